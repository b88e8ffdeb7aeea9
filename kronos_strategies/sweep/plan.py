"""Sweep planning: the ``sweep:`` YAML block, its validation, and the expansion into runs and forecast shards.

Runs are (asset or universe x parameter set); each gets a ``run_id`` hashing everything its result depends on
(config, bars and the model's checkpoint files, see :mod:`.fingerprint`). Runs
that need the same forecasts form a group, whose forecast bars are cut into date-range shards. Groups
with a ``finetune:`` (walk-forward) block instead become walk-forward jobs: one per (asset, model,
fine-tuning settings), which trains each fold once and forecasts every sampling variant in turn.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import BacktestConfig, DataConfig, build_dataclass, load_config
from ..config.sweep import OBJECTIVES, SweepConfig
from ..errors import ConfigError
from ..feeds import DATASETS, data_fingerprint, slice_with_warmup
from ..runner import load_bars, strategy_classes
from .fingerprint import checkpoint_fingerprint
from .universes import (
    SOURCE_KEYS,
    UniverseShard,
    universe_data_fingerprint,
    universe_entry,
    universe_label,
    universe_raw,
    universe_shards,
)  # fmt: skip

__all__ = [
    "OBJECTIVES", "RunSpec", "Shard", "SweepConfig", "SweepPlan", "WalkForwardJob", "param_sets", "plan_sweep",
]  # fmt: skip

# Top-level sections whose keys may be swept; name/output/engine only change bookkeeping.
_SWEEPABLE: tuple[str, ...] = (
    "indicator",
    "strategy",
    "broker",
    "model",
    "dates",
    "data",
    "finetune",
    "universe",
)
# Keys that change neither a forecast nor a trade, left out of run ids so moving the cache keeps results.
_NOT_IN_RUN_ID: tuple[tuple[str, str], ...] = (("indicator", "cache_dir"), ("indicator", "batch_size"))


# ----------------------------------------------------------------------------- validation and planning


def _set_dotted(raw: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of the nested mapping with ``a.b.c`` set to ``value`` (missing levels are created)."""
    out = copy.deepcopy(dict(raw))
    node, parts = out, key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(
                f"sweep key '{key}': '{'.'.join(parts[: depth + 1])}' is a value, not a section"
            )
        node = child
    node[parts[-1]] = value
    return out


def _base_raw(cfg: BacktestConfig) -> dict[str, Any]:
    """The config as a plain mapping without the sweep block, ready for per-run edits."""
    raw = cfg.to_dict()
    raw.pop("sweep", None)
    raw["engine"]["progress"] = False
    return raw


def _choices(spec: Any, key: str, method: str) -> list[Any]:
    """Check one ``sweep.params`` entry; the candidate values (random ranges: their two bounds)."""
    where = f"sweep.params['{key}']"
    if isinstance(spec, list | tuple) and spec:
        return list(spec)
    if method == "random" and isinstance(spec, Mapping):
        extra = set(spec) - {"low", "high", "log"}
        if extra or not {"low", "high"} <= set(spec):
            raise ConfigError(
                f"{where} range needs 'low' and 'high' (optional 'log'), got keys {sorted(spec)}"
            )
        low, high = spec["low"], spec["high"]
        if (
            not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
            or not low < high
        ):
            raise ConfigError(f"{where} range needs numbers low < high, got low={low!r} high={high!r}")
        if spec.get("log") and low <= 0:
            raise ConfigError(f"{where} log range needs low > 0, got {low!r}")
        return [low, high]
    shape = "a non-empty list of values" + (" or a {low, high} range" if method == "random" else "")
    raise ConfigError(f"{where} must be {shape}, got {spec!r}")


def _check_key(base: Mapping[str, Any], key: str, value: Any) -> None:
    """Apply one value of a swept key to the base config and validate the result; errors name the key."""
    top = key.split(".")[0]
    if top not in _SWEEPABLE or "." not in key:
        raise ConfigError(
            f"sweep key '{key}' cannot be swept: use a dotted key under {', '.join(_SWEEPABLE)} "
            f"(e.g. strategy.params.enter or indicator.lookback)"
        )
    if top == "universe" and key.split(".")[1] in SOURCE_KEYS:
        raise ConfigError(f"sweep key '{key}' cannot be swept: list the universes under 'sweep.universes'")
    try:
        check_strategy(load_config(_set_dotted(base, key, value)))
    except ConfigError as exc:
        raise ConfigError(f"bad sweep key '{key}' (value {value!r}): {exc}") from None


def check_strategy(cfg: BacktestConfig) -> None:
    """The strategy (and indicator) classes a config names exist and take its params (universe: a ranking one)."""
    if cfg.universe is not None:
        from ..universe.runner import strategy_class

        strategy_class(cfg)
    else:
        strategy_classes(cfg)


def _asset_raw(item: Any, i: int) -> dict[str, Any]:
    """One ``sweep.assets`` entry as a ``data:`` mapping (a string is a data set name or a file path)."""
    if isinstance(item, str):
        return {"dataset": item} if item in DATASETS else {"path": item}
    if isinstance(item, Mapping):
        build_dataclass(DataConfig, item, f"sweep.assets[{i}]")
        return dict(item)
    raise ConfigError(
        f"sweep.assets[{i}] must be a data mapping (path/dataset/name...) or a path, got {item!r}"
    )


def _asset_label(data: Mapping[str, Any]) -> str:
    return str(data.get("name") or data.get("dataset") or Path(str(data.get("path"))).stem)


def check_sweep_runs(section: SweepConfig, cfg: BacktestConfig) -> None:
    """Every swept value and every source of ``sweep:`` makes a runnable backtest (run by ``load_config``
    after the block's own rules, :func:`kronos_strategies.config.sweep.check_sweep`); errors name the key."""
    universe = cfg.universe is not None
    base = _base_raw(cfg)
    for key, spec in section.params.items():
        _check_key(base, key, _choices(spec, key, section.method)[0])
    labels = [label for label, _ in _sources(section, base)]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        what = "universes" if universe else "assets"
        raise ConfigError(f"sweep.{what} has duplicate names {dupes}: give each a distinct 'name'")


def _draw(rng: np.random.Generator, spec: Any) -> Any:
    """One random value: an element of a list, or from a (log-)uniform range (ints stay ints)."""
    if isinstance(spec, list | tuple):
        return spec[int(rng.integers(len(spec)))]
    low, high = spec["low"], spec["high"]
    if spec.get("log"):
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    if isinstance(low, int) and isinstance(high, int):
        return int(min(high, max(low, round(value))))
    return float(value)


def param_sets(section: SweepConfig) -> list[dict[str, Any]]:
    """Every parameter set of the sweep: the grid's product, or ``samples`` distinct random draws."""
    keys = list(section.params)
    if section.method == "grid":
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*section.params.values())]
    rng = np.random.default_rng(section.seed)
    sets: dict[str, dict[str, Any]] = {}
    for _ in range(section.samples):
        draw = {key: _draw(rng, section.params[key]) for key in keys}
        sets.setdefault(json.dumps(draw, sort_keys=True, default=str), draw)
    return list(sets.values())


@dataclass
class RunSpec:
    """One backtest of the sweep: its id, asset, swept values, full config and forecast group."""

    run_id: str
    asset: str
    params: dict[str, Any]
    config: BacktestConfig
    group: str


@dataclass
class Shard:
    """Forecasts of one asset group over one date range: the bars ``first .. last`` of its frame."""

    group: str
    asset: str
    config: BacktestConfig
    first: pd.Timestamp
    last: pd.Timestamp
    windows: int


@dataclass
class WalkForwardJob:
    """Walk-forward precompute of one (asset, model, fine-tuning settings): one config per forecast group.

    Its groups run one after another in one task, so no fold model is ever trained by two tasks at once.
    """

    key: str
    asset: str
    groups: list[str]
    configs: list[BacktestConfig]

    def only(self, groups: set[str]) -> WalkForwardJob | None:
        """The job cut down to ``groups`` (None when none of its groups is left)."""
        keep = [i for i, g in enumerate(self.groups) if g in groups]
        if not keep:
            return None
        return WalkForwardJob(
            self.key, self.asset, [self.groups[i] for i in keep], [self.configs[i] for i in keep]
        )


@dataclass
class SweepPlan:
    """What a sweep will do: every run, the forecast shards, the bars per asset and where results go."""

    config: BacktestConfig
    section: SweepConfig
    runs: list[RunSpec]
    shards: list[Shard | UniverseShard]
    bars: dict[str, Any]  # an asset's frame, or a universe's frames by asset name
    out: Path
    walkforward: list[WalkForwardJob] = field(default_factory=list)

    @property
    def runs_dir(self) -> Path:
        return self.out / "runs"

    def done(self) -> set[str]:
        """Run ids already written by an earlier (possibly interrupted) sweep."""
        return {run.run_id for run in self.runs if (self.runs_dir / f"{run.run_id}.json").is_file()}


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run_id(raw: Mapping[str, Any], data_fp: str, model_fp: str) -> str:
    """Hash of everything a run's result depends on (the config minus bookkeeping, the bars, the model files)."""
    payload = {k: v for k, v in raw.items() if k not in ("name", "output", "engine", "data")}
    payload["indicator"] = {
        k: v for k, v in payload["indicator"].items() if ("indicator", k) not in _NOT_IN_RUN_ID
    }
    payload["data"] = {k: v for k, v in raw["data"].items() if k in ("name", "tz")}
    # which files the model came from does not matter either: their bytes are in ``model_fp``
    payload["model"] = {k: v for k, v in raw["model"].items() if k in ("device", "max_context")}
    if "universe" in raw:  # where the files are does not matter, their bars do
        payload["universe"] = {k: v for k, v in raw["universe"].items() if k not in SOURCE_KEYS}
    return _digest({"config": payload, "bars": data_fp, "model": model_fp})


def _finetune_settings(
    cfg: BacktestConfig, *, drop: tuple[str, ...] = ("progress",)
) -> dict[str, Any] | None:
    """The ``finetune:`` block as a mapping without keys that change no fold model (None: no walk-forward)."""
    section = cfg.finetune
    if section is None:
        return None
    return {k: v for k, v in dataclasses.asdict(section).items() if k not in drop}


def _forecast_group(asset: str, cfg: BacktestConfig) -> str:
    """Runs in one group need the same forecasts (``every`` only picks which of them)."""
    ind = cfg.indicator
    return _digest([asset, dataclasses.astuple(cfg.model), cfg.dates.start, cfg.dates.end, ind.lookback,
                    ind.pred_len, ind.sample_count, ind.T, ind.top_k, ind.top_p, ind.seed,
                    _finetune_settings(cfg), _min_history(cfg)])  # fmt: skip


def _min_history(cfg: BacktestConfig) -> int | None:
    """A universe's ``min_history`` (it moves the trading start, so the windows forecast); None without one."""
    uni = cfg.universe
    return None if uni is None else uni.min_history


def _gcd_every(runs: list[RunSpec]) -> BacktestConfig:
    """The first run's config forecasting every bar any run of the group needs (gcd of their ``every``)."""
    cfg = copy.copy(runs[0].config)
    every = math.gcd(*(run.config.indicator.every for run in runs))
    cfg.indicator = dataclasses.replace(cfg.indicator, every=every)
    return cfg


def _walkforward_jobs(groups: dict[str, list[RunSpec]]) -> list[WalkForwardJob]:
    """One job per (asset, model, fine-tuning settings); sampling variants sharing fold models stay together."""
    jobs: dict[str, WalkForwardJob] = {}
    for group, runs in groups.items():
        cfg = runs[0].config
        settings = _finetune_settings(cfg, drop=("progress", "compare_base"))
        if settings is None or cfg.universe is not None:  # a universe's folds train in its forecast shard
            continue
        key = _digest([runs[0].asset, dataclasses.astuple(cfg.model), settings])
        job = jobs.setdefault(key, WalkForwardJob(key, runs[0].asset, [], []))
        job.groups.append(group)
        job.configs.append(_gcd_every(runs))
    return list(jobs.values())


def _shards(group: str, asset: str, runs: list[RunSpec], bars: pd.DataFrame, workers: int) -> list[Shard]:
    """Split a group's forecast bars into contiguous date ranges, at least one batch each."""
    cfg = _gcd_every(runs)
    lb = cfg.indicator.lookback
    frame, _ = slice_with_warmup(bars, cfg.dates.start, cfg.dates.end, warmup=lb - 1)
    if len(frame) < lb + 2:
        return []  # too short: each run reports InsufficientHistoryError itself
    positions = list(range(lb - 1, len(frame), cfg.indicator.every))
    size = max(cfg.indicator.batch_size, math.ceil(len(positions) / (2 * workers)))
    chunks = [positions[i : i + size] for i in range(0, len(positions), size)]
    return [Shard(group, asset, cfg, frame.index[c[0] - lb + 1], frame.index[c[-1]], len(c)) for c in chunks]


def _sources(section: SweepConfig, base: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, config mapping) of every asset, or with a ``universe:`` block every universe, of the sweep."""
    if "universe" in base:
        entries = [universe_entry(item, i) for i, item in enumerate(section.universes)]
        if not entries:
            return [(universe_label({}, str(base.get("name") or "universe")), dict(base))]
        return [(universe_label(e, f"universe{i}"), universe_raw(base, e)) for i, e in enumerate(entries)]
    assets = [_asset_raw(item, i) for i, item in enumerate(section.assets)] or [base["data"]]
    return [(_asset_label(data), _set_dotted(base, "data", data)) for data in assets]


def _load_source(cfg: BacktestConfig) -> tuple[Any, str]:
    """The bars of one asset (a frame) or universe (frames by asset name) and their fingerprint."""
    if cfg.universe is not None:
        from ..universe.assets import load_universe

        frames = load_universe(cfg)
        return frames, universe_data_fingerprint(frames)
    frame = load_bars(cfg)
    return frame, data_fingerprint(frame)


def plan_sweep(
    config: BacktestConfig | str | Path | Mapping[str, Any],
    *,
    overrides: tuple[str, ...] | list[str] = (),
    out: str | Path | None = None,
    workers: int = 1,
) -> SweepPlan:
    """Expand a config with a ``sweep:`` block into runs and forecast shards (loads the bars, no model)."""
    cfg = config if isinstance(config, BacktestConfig) else load_config(config, overrides)
    section = cfg.sweep
    if section is None:
        raise ConfigError(
            f"{cfg.source or 'the config'} has no 'sweep:' block; add one (see backtests/sp500_sweep.yaml)"
        )
    out_dir = Path(out) if out is not None else Path(section.out.replace("{name}", cfg.name))
    base = _base_raw(cfg)
    cache_dir = cfg.indicator.cache_dir or str(out_dir / "forecast_cache")
    base["indicator"]["cache_dir"] = str(Path(cache_dir).resolve())
    runs: list[RunSpec] = []
    bars: dict[str, Any] = {}
    models: dict[tuple[Any, ...], str] = {}
    for label, with_source in _sources(section, base):
        first = load_config(with_source)
        first.source = cfg.source
        bars[label], data_fp = _load_source(first)
        for params in param_sets(section):
            raw = with_source
            for key, value in params.items():
                raw = _set_dotted(raw, key, value)
            try:
                run_cfg = load_config(raw)
                check_strategy(run_cfg)
            except ConfigError as exc:
                raise ConfigError(f"sweep run {label} {params}: {exc}") from None
            if run_cfg.indicator.seed is None:
                raise ConfigError(
                    "sweeps share seeded forecasts: set 'indicator.seed' to an integer, not null"
                )
            run_cfg.source = cfg.source
            key = dataclasses.astuple(run_cfg.model)
            if key not in models:
                models[key] = checkpoint_fingerprint(run_cfg.model)
            run_id = _run_id(raw, data_fp, models[key])
            runs.append(RunSpec(run_id, label, params, run_cfg, _forecast_group(label, run_cfg)))
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    jobs = _walkforward_jobs(groups)
    in_jobs = {g for job in jobs for g in job.groups}
    shards: list[Shard | UniverseShard] = []
    for g, rs in groups.items():
        if g in in_jobs:
            continue
        if rs[0].config.universe is not None:
            shards += universe_shards(g, rs[0].asset, _gcd_every(rs), bars[rs[0].asset], workers)
        else:
            shards += _shards(g, rs[0].asset, rs, bars[rs[0].asset], workers)
    return SweepPlan(cfg, section, runs, shards, bars, out_dir, jobs)
