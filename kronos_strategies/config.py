"""YAML backtest configuration: ``yaml.safe_load`` into dataclasses, validated in two steps.

Step 1 checks every key and type (an unknown key is a ``ConfigError`` naming it and the closest valid
one); step 2 checks rules across fields (horizon <= pred_len, start < end, ...). ``--set a.b=value``
overrides are applied to the raw mapping first, so they are validated exactly like the file.

Other parts of kronos-bt add their own top-level blocks (``finetune:``, ``sweep:``) with
:func:`register_section`, giving a dataclass (loaded by the same rules) and an optional cross-field check.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import importlib
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = [
    "BacktestConfig",
    "BenchmarkConfig",
    "BrokerConfig",
    "DataConfig",
    "DatesConfig",
    "EngineConfig",
    "IndicatorConfig",
    "ModelConfig",
    "OutputConfig",
    "StrategyConfig",
    "apply_overrides",
    "build_dataclass",
    "check_names",
    "check_param_types",
    "load_config",
    "register_section",
    "check_data_source",
]


@dataclass
class DataConfig:
    """Where the bars come from: a CSV/Parquet ``path``, a built-in ``dataset``, or ``source: ccxt`` (exactly one)."""

    path: str | None = None
    dataset: str | None = None  # built-in, offline: "sp500" (arch package, daily 1999-2018)
    timestamp_column: str | None = None  # default: timestamp/datetime/date/time column or the index
    tz: str | None = None  # localise naive timestamps / convert aware ones, e.g. "America/New_York"
    name: str | None = None  # label in reports; default: the file stem or data set name
    source: str | None = None  # "ccxt": download closed candles from an exchange (cached on disk)
    exchange: str = "binance"  # ccxt exchange id (source: ccxt)
    symbol: str | None = None  # e.g. "BTC/USDT" (source: ccxt)
    timeframe: str = "1h"  # ccxt timeframe (source: ccxt)
    url: str | None = None  # API base URL override, e.g. the emulator's http://127.0.0.1:PORT
    since: str | None = None  # first bar to download (UTC); default: dates.start less the lookback warm-up
    cache_dir: str | None = ".kronos_cache/ohlcv"  # downloaded candles (None: download every run)
    periods_per_year: float | None = None  # bars per year for annualising; None: from the data's calendar


@dataclass
class DatesConfig:
    """Trading period (inclusive); warm-up bars before ``start`` only feed the first lookback window."""

    start: str | None = None
    end: str | None = None


@dataclass
class ModelConfig:
    """Which checkpoint: bundled (no ``name``), a hub id or a directory, or separate module dirs."""

    name: str | None = None  # None: the bundled offline model "kronos-bt/nano"
    revision: str | None = None
    predictor: str | None = None  # directory of a Kronos predictor (use with ``tokenizer``)
    tokenizer: str | None = None  # directory of a KronosTokenizer
    device: str = "cpu"
    max_context: int | None = None


@dataclass
class IndicatorConfig:
    """``KronosSignal`` parameters (or a subclass named in ``type`` as ``module:Class``)."""

    type: str = "kronos_strategies.indicator:KronosSignal"
    lookback: int = 256
    pred_len: int = 5
    horizon: int = 5
    sample_count: int = 16
    quantiles: tuple[float, float] = (0.1, 0.9)
    every: int = 1  # re-forecast every N bars, hold the last forecast in between
    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    seed: int | None = 0  # None: unseeded, not cached, not reproducible
    batch_size: int = 64
    cache_dir: str | None = ".kronos_cache"  # None: no forecast cache
    params: dict[str, Any] = field(default_factory=dict)  # extra params of a subclassed indicator


@dataclass
class StrategyConfig:
    """A ready strategy by short name (``threshold``, ``vol_target``) or ``module:Class``, and its params."""

    name: str = "threshold"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BrokerConfig:
    """Starting cash and costs; commission and slippage are fractions of traded value / price."""

    cash: float = 100_000.0
    commission: float = 0.001
    slippage: float = 0.0005


@dataclass
class BenchmarkConfig:
    """The benchmark is buy-and-hold of the same asset over the same bars (never downloaded)."""

    type: str = "buy_and_hold"
    title: str = "Buy & hold"


@dataclass
class OutputConfig:
    """Report directory (``{name}`` is the config name) and which artefacts to write."""

    dir: str = "runs/{name}"
    tearsheet: bool = True
    chart: bool = True
    title: str | None = None


@dataclass
class EngineConfig:
    """How backtrader iterates: ``vectorised`` (runonce, batched forecasts) or ``event`` (bar by bar)."""

    mode: str = "vectorised"
    progress: bool = True
    threads: int | None = (
        None  # torch CPU threads; None keeps torch's default (1 is steadiest on a busy machine)
    )


@dataclass
class BacktestConfig:
    """A whole backtest; ``sections`` holds blocks registered by other modules (finetune, sweep...)."""

    name: str = "backtest"
    data: DataConfig = field(default_factory=DataConfig)
    dates: DatesConfig = field(default_factory=DatesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    indicator: IndicatorConfig = field(default_factory=IndicatorConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    sections: dict[str, Any] = field(default_factory=dict, init=False)  # registered blocks
    source: str | None = field(default=None, init=False)  # the YAML file it came from, if any

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping (for the run manifest); registered sections appear as top-level keys."""
        out = dataclasses.asdict(self)
        sections = out.pop("sections")
        out.pop("source")
        for key, value in sections.items():
            out[key] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        return out

    @property
    def output_dir(self) -> Path:
        """The report directory with ``{name}`` filled in."""
        return Path(self.output.dir.replace("{name}", self.name))


# ----------------------------------------------------------------------------- registered sections

_SECTIONS: dict[str, tuple[type, Callable[[Any, BacktestConfig], None] | None]] = {}
_RESERVED = {f.name for f in dataclasses.fields(BacktestConfig) if f.init}


def register_section(
    name: str, cls: type, validate: Callable[[Any, BacktestConfig], None] | None = None
) -> None:
    """Accept a top-level ``name:`` block loaded into dataclass ``cls``; ``validate`` runs in step 2."""
    if name in _RESERVED:
        raise ValueError(f"{name!r} is a built-in section of the backtest config")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"section {name!r} needs a dataclass, got {cls!r}")
    _SECTIONS[name] = (cls, validate)


# ----------------------------------------------------------------------------- step 1: keys and types


def check_names(given: Iterable[str], valid: Iterable[str], where: str) -> None:
    """Raise a ConfigError naming the first unknown key and the closest valid one."""
    valid = sorted(valid)
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
            hint = f"; did you mean '{_join(where, close[0])}'?" if close else ""
            raise ConfigError(f"unknown key '{_join(where, key)}'{hint} (valid keys: {', '.join(valid)})")


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def build_dataclass(cls: type, raw: object, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking key names and value types recursively."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"'{where}' must be a mapping of keys to values, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_names(raw, fields, where)
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(value, hints[key], _join(where, key)) for key, value in raw.items()}
    return cls(**values)


def _type_name(hint: object) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(value: object, hint: object, where: str) -> object:  # noqa: C901 - one branch per type
    """Check ``value`` against a type hint, converting only where YAML is loose (int -> float, date -> str)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, where)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.date):  # YAML reads 2015-01-01 as a date
            return value.isoformat()
    elif origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, list | tuple):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            if len(value) == len(args):
                return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
            raise ConfigError(f"'{where}' must have {len(args)} values, got {len(value)}")
    elif origin is dict:
        if isinstance(value, Mapping):
            return dict(value)
    else:
        raise TypeError(f"config field {where} has an unsupported type {hint!r}")
    shown = _type_name(hint) if origin is None else _type_name(origin)
    raise ConfigError(f"'{where}' must be of type {shown}, got {value!r} ({type(value).__name__})")


# ----------------------------------------------------------------------------- step 2: cross-field rules


def _rule(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _iso(value: str | None, key: str) -> datetime.datetime | None:
    """An ISO date/time value of ``key`` (None stays None)."""
    if value is None:
        return None
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"'{key}' must be an ISO date like 2015-01-01, got {value!r}") from None


def check_data_source(data: DataConfig, start: str | None, prefix: str = "data.", where: str = "") -> None:
    """The rules of one ``data:`` mapping (a file, a built-in data set or ``source: ccxt``). Keys are named
    ``prefix + key`` and messages start with ``where`` (a universe names the asset)."""

    def rule(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(where + message)

    def key(name: str) -> str:
        return f"'{prefix}{name}'"

    rule(
        data.source in (None, "ccxt"), f"{key('source')} must be 'ccxt' or null (a file), got {data.source!r}"
    )
    if data.source != "ccxt":
        rule(
            (data.path is None) != (data.dataset is None),
            f"set exactly one of {key('path')} (a CSV/Parquet file), {key('dataset')} (built-in, e.g. sp500) "
            f"and '{prefix}source: ccxt'",
        )
        return
    rule(
        data.path is None and data.dataset is None,
        f"'{prefix}source: ccxt' downloads the bars: remove {key('path')} / {key('dataset')}",
    )
    rule(
        isinstance(data.symbol, str) and "/" in data.symbol,
        f"{key('symbol')} is required with '{prefix}source: ccxt' and must look like 'BTC/USDT', got {data.symbol!r}",
    )
    rule(
        data.since is not None or start is not None,
        f"'{prefix}source: ccxt' needs where to start: set {key('since')} or 'dates.start'",
    )
    rule(
        data.url is None or data.url.startswith(("http://", "https://")),
        f"{key('url')} must start with http:// or https://, got {data.url!r}",
    )
    try:
        _iso(data.since, f"{prefix}since")
    except ConfigError as exc:
        raise ConfigError(where + str(exc)) from None


def _validate(cfg: BacktestConfig) -> None:
    """Rules across fields; each message says which key to change."""
    data, ind = cfg.data, cfg.indicator
    if "universe" not in cfg.sections:  # a `universe:` block (kronos_strategies.universe) replaces `data:`
        check_data_source(data, cfg.dates.start)
    _check_tz(data.tz)
    _rule(
        data.periods_per_year is None or data.periods_per_year > 0,
        f"'data.periods_per_year' must be > 0 or null (from the calendar), got {data.periods_per_year}",
    )
    bounds = {key: _iso(getattr(cfg.dates, key), f"dates.{key}") for key in ("start", "end")}
    if None not in bounds.values():
        _rule(bounds["start"] < bounds["end"], "'dates.start' must be before 'dates.end'")
    model = cfg.model
    _rule(
        (model.predictor is None) == (model.tokenizer is None),
        "'model.predictor' and 'model.tokenizer' go together: set both directories or neither",
    )
    _rule(
        model.name is None or model.predictor is None,
        "set either 'model.name' or 'model.predictor' + 'model.tokenizer', not both",
    )
    _rule(ind.lookback >= 8, f"'indicator.lookback' must be >= 8 bars, got {ind.lookback}")
    _rule(ind.pred_len >= 1, f"'indicator.pred_len' must be >= 1, got {ind.pred_len}")
    _rule(
        1 <= ind.horizon <= ind.pred_len,
        f"'indicator.horizon' must be in [1, pred_len={ind.pred_len}], got {ind.horizon}",
    )
    _rule(ind.sample_count >= 1, f"'indicator.sample_count' must be >= 1, got {ind.sample_count}")
    lo, hi = ind.quantiles
    _rule(
        0 < lo < hi < 1,
        f"'indicator.quantiles' must be two levels 0 < lower < upper < 1, got {ind.quantiles}",
    )
    _rule(ind.every >= 1, f"'indicator.every' must be >= 1 bar, got {ind.every}")
    _rule(ind.T > 0, f"'indicator.T' must be > 0, got {ind.T}")
    _rule(ind.top_k >= 0, f"'indicator.top_k' must be >= 0, got {ind.top_k}")
    _rule(0 < ind.top_p <= 1, f"'indicator.top_p' must be in (0, 1], got {ind.top_p}")
    _rule(ind.batch_size >= 1, f"'indicator.batch_size' must be >= 1, got {ind.batch_size}")
    _rule(cfg.broker.cash > 0, f"'broker.cash' must be > 0, got {cfg.broker.cash}")
    _rule(
        0 <= cfg.broker.commission < 1, f"'broker.commission' must be in [0, 1), got {cfg.broker.commission}"
    )
    _rule(0 <= cfg.broker.slippage < 1, f"'broker.slippage' must be in [0, 1), got {cfg.broker.slippage}")
    _rule(
        cfg.benchmark.type == "buy_and_hold",
        f"'benchmark.type' must be 'buy_and_hold' (the same asset), got {cfg.benchmark.type!r}",
    )
    _rule(
        cfg.engine.mode in ("vectorised", "event"),
        f"'engine.mode' must be 'vectorised' or 'event', got {cfg.engine.mode!r}",
    )
    _rule(
        cfg.engine.threads is None or cfg.engine.threads >= 1,
        f"'engine.threads' must be >= 1 or null, got {cfg.engine.threads}",
    )
    for name, section in cfg.sections.items():
        validate = _SECTIONS[name][1]
        if validate is not None:
            validate(section, cfg)


def _check_tz(tz: str | None) -> None:
    """An unknown time zone is a ConfigError naming 'data.tz' and an example of a valid one."""
    if tz is None:
        return
    import pandas as pd

    try:
        pd.Timestamp("2020-01-01").tz_localize(tz)
    except Exception:  # noqa: BLE001 - zoneinfo, pytz and dateutil raise different types
        raise ConfigError(
            f"'data.tz' {tz!r} is not a known time zone; use an IANA name like 'UTC' or 'America/New_York'"
        ) from None


def check_param_types(given: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check params against the types of their declared defaults (before any forecast); ints pass as floats."""
    out = dict(given)
    for key, value in given.items():
        default = defaults.get(key)
        if default is None or value is None:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int | float):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if ok and isinstance(default, float):
                out[key] = float(value)
            elif ok and isinstance(value, float):
                ok = value.is_integer()
                out[key] = int(value)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, list | tuple):
            ok = isinstance(value, list | tuple)
        else:
            continue
        if not ok:
            kind = "true/false" if isinstance(default, bool) else type(default).__name__
            raise ConfigError(
                f"'{where}.{key}' must be {kind} like the default {default!r}, got {value!r} "
                f"({type(value).__name__}); fix it in the YAML or with --set {where}.{key}=..."
            )
    return out


# ----------------------------------------------------------------------------- loading


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML: numbers, booleans, lists) to a copy of ``raw``."""
    out = _deep_copy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (e.g. strategy.params.enter=0.2), got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node = out
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: '{'.'.join(parts[: depth + 1])}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in raw.items()}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping of sections (data:, model:, ...), not {type(raw).__name__}"
        )
    return raw


# Modules that register the optional sections; imported on first use so every entry point knows them.
SECTION_MODULES: dict[str, str] = {
    "finetune": "kronos_strategies.walkforward.config",
    "paper": "kronos_strategies.paper.config",
    "sweep": "kronos_strategies.sweep.plan",
    "universe": "kronos_strategies.universe.config",
}


def _register_optional_sections(names: Iterable[str]) -> None:
    for name in names:
        if name in SECTION_MODULES and name not in _SECTIONS:
            importlib.import_module(SECTION_MODULES[name])


def load_config(source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> BacktestConfig:
    """Read a YAML file (or a mapping), apply ``--set`` overrides and validate in two steps."""
    path = None if isinstance(source, Mapping) else Path(source)
    raw = dict(source) if path is None else _read_yaml(path)
    raw = apply_overrides(raw, overrides)
    if path is not None:
        raw.setdefault("name", path.stem)
    _register_optional_sections(raw)
    check_names(raw, _RESERVED | set(_SECTIONS), "")
    sections = {
        name: build_dataclass(_SECTIONS[name][0], raw.pop(name), name)
        for name in list(raw)
        if name in _SECTIONS
    }
    cfg = build_dataclass(BacktestConfig, raw, "")
    cfg.sections = sections
    cfg.source = None if path is None else str(path)
    _validate(cfg)
    return cfg
