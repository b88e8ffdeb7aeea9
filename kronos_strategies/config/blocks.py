"""The blocks every backtest YAML has (``data:``, ``dates:``, ``model:``, ``indicator:``, ``strategy:``,
``broker:``, ``benchmark:``, ``output:``, ``engine:``) and one small validator per block (step 2 rules).

Each message names the key to change and how.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from kronos_model.calibration import CalibrationSpec

from ..errors import ConfigError

__all__ = [
    "BenchmarkConfig",
    "BrokerConfig",
    "DataConfig",
    "DatesConfig",
    "EngineConfig",
    "IndicatorConfig",
    "ModelConfig",
    "OutputConfig",
    "StrategyConfig",
    "check_benchmark",
    "check_broker",
    "check_data",
    "check_data_source",
    "check_dates",
    "check_engine",
    "check_indicator",
    "check_model",
    "iso_time",
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
    calibration: CalibrationSpec | None = None  # {method: aci, target: 0.8, ...}: calibrated band
    every: int = 1  # re-forecast every N bars, hold the last forecast in between
    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    seed: int | None = 0  # None: unseeded, not cached, not reproducible
    anchor: bool = True  # step 0 reconstructs the last bar (= forecasting.ANCHOR_DEFAULT)
    batch_size: int = 64
    cache_dir: str | None = ".kronos_cache"  # None: no forecast cache
    params: dict[str, Any] = field(default_factory=dict)  # extra params of a subclassed indicator

    def resolved(self, name: str) -> Any:
        """Setting ``name`` as the indicator gets it: a key in ``params`` overrides the field of that name."""
        return self.params.get(name, getattr(self, name))


@dataclass
class StrategyConfig:
    """A ready strategy by short name (``threshold``, ``vol_target``) or ``module:Class``, and its params."""

    name: str = "threshold"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BrokerConfig:
    """Starting cash and costs, the same meaning in backtests and paper trading: commission and slippage are
    fractions of traded value / price."""

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


# ----------------------------------------------------------------------------- step 2: one validator per block


def _rule(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def iso_time(value: str | None, key: str) -> datetime.datetime | None:
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
        iso_time(data.since, f"{prefix}since")
    except ConfigError as exc:
        raise ConfigError(where + str(exc)) from None


def check_data(data: DataConfig, dates: DatesConfig, *, has_source: bool = True) -> None:
    """``data:``: one source (unless a ``universe:`` block supplies the bars), a known time zone, a sane year."""
    if has_source:
        check_data_source(data, dates.start)
    _check_tz(data.tz)
    _rule(
        data.periods_per_year is None or data.periods_per_year > 0,
        f"'data.periods_per_year' must be > 0 or null (from the calendar), got {data.periods_per_year}",
    )


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


def check_dates(dates: DatesConfig) -> None:
    """``dates:``: ISO dates, start before end."""
    bounds = {key: iso_time(getattr(dates, key), f"dates.{key}") for key in ("start", "end")}
    if None not in bounds.values():
        _rule(bounds["start"] < bounds["end"], "'dates.start' must be before 'dates.end'")


def check_model(model: ModelConfig) -> None:
    """``model:``: a name, or a predictor + tokenizer directory pair, not both."""
    _rule(
        (model.predictor is None) == (model.tokenizer is None),
        "'model.predictor' and 'model.tokenizer' go together: set both directories or neither",
    )
    _rule(
        model.name is None or model.predictor is None,
        "set either 'model.name' or 'model.predictor' + 'model.tokenizer', not both",
    )


def check_indicator(ind: IndicatorConfig) -> None:
    """``indicator:``: window, horizon, sampling and batching ranges."""
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
    if ind.calibration is not None:
        ind.calibration.check("indicator.calibration")


def check_broker(broker: BrokerConfig) -> None:
    """``broker:``: positive cash, commission and slippage fractions in [0, 1)."""
    _rule(broker.cash > 0, f"'broker.cash' must be > 0, got {broker.cash}")
    _rule(0 <= broker.commission < 1, f"'broker.commission' must be in [0, 1), got {broker.commission}")
    _rule(0 <= broker.slippage < 1, f"'broker.slippage' must be in [0, 1), got {broker.slippage}")


def check_benchmark(benchmark: BenchmarkConfig) -> None:
    """``benchmark:``: buy-and-hold of the same asset is the only kind."""
    _rule(
        benchmark.type == "buy_and_hold",
        f"'benchmark.type' must be 'buy_and_hold' (the same asset), got {benchmark.type!r}",
    )


def check_engine(engine: EngineConfig) -> None:
    """``engine:``: a known mode, a positive thread count."""
    _rule(
        engine.mode in ("vectorised", "event"),
        f"'engine.mode' must be 'vectorised' or 'event', got {engine.mode!r}",
    )
    _rule(
        engine.threads is None or engine.threads >= 1,
        f"'engine.threads' must be >= 1 or null, got {engine.threads}",
    )
