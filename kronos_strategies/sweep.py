"""Parameter sweeps over many assets on dask.distributed, sharing one content-addressed forecast cache.

A backtest YAML with a ``sweep:`` block expands into runs (assets x parameter sets). The expensive part,
the Kronos forecasts, depends only on (asset, model, sampling settings), so it is computed first, once,
sharded over the workers by asset and date range into the shared :class:`~kronos_strategies.cache.ForecastCache`.
The cheap backtests then run as dask tasks that only read the cache. Each finished run is written at
once as ``<out>/runs/<run_id>.json`` (the id hashes everything the run depends on), so a killed worker
or an interrupted sweep loses nothing and a re-run skips what is done. At the end: a tidy table
(Parquet + CSV), a heatmap of the objective over the two most influential parameters and full
tear-sheets of the best runs.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import itertools
import json
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from tqdm.auto import tqdm

from kronos_model.errors import KronosError

from . import sweep_report
from .config import BacktestConfig, DataConfig, ModelConfig, build_dataclass, load_config, register_section
from .errors import ConfigError
from .feeds import DATASETS, data_fingerprint, make_feed, slice_with_warmup
from .runner import _classes, _indicator_params, load_bars, load_model, run_backtest

__all__ = [
    "OBJECTIVES",
    "RunSpec",
    "Shard",
    "SweepConfig",
    "SweepPlan",
    "SweepResult",
    "plan_sweep",
    "run_sweep",
]

# Metrics a sweep can rank by (keys of reporting.performance_metrics).
OBJECTIVES: tuple[str, ...] = (
    "sharpe", "sortino", "cagr", "total_return", "max_drawdown", "volatility", "hit_rate", "exposure", "turnover",
)  # fmt: skip
# Top-level sections whose keys may be swept; name/output/engine only change bookkeeping.
_SWEEPABLE: tuple[str, ...] = ("indicator", "strategy", "broker", "model", "dates", "data")
# Keys that change neither a forecast nor a trade, left out of run ids so moving the cache keeps results.
_NOT_IN_RUN_ID: tuple[tuple[str, str], ...] = (("indicator", "cache_dir"), ("indicator", "batch_size"))


@dataclass
class SweepConfig:
    """The ``sweep:`` block: which keys to vary and how, over which assets, ranked by which metric."""

    method: str = "grid"  # grid: every combination; random: ``samples`` draws
    params: dict[str, Any] = field(
        default_factory=dict
    )  # dotted key -> list of values (random: or {low, high, log})
    samples: int = 20  # random search: parameter sets drawn (duplicates dropped)
    seed: int = 0  # random search: the draws' seed
    assets: tuple[Any, ...] = ()  # data sources: mappings like `data:`, a file path or a data set name
    objective: str = "sharpe"
    direction: str = "max"  # max or min
    top_n: int = 3  # full tear-sheets for the best N runs
    out: str = "sweeps/{name}"
    workers: int | None = None  # local cluster size (default: one per CPU core, at most 8)
    threads_per_worker: int = 1
    scheduler: str | None = None  # tcp://HOST:PORT of an existing dask scheduler


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
    try:
        _classes(load_config(_set_dotted(base, key, value)))
    except ConfigError as exc:
        raise ConfigError(f"bad sweep key '{key}' (value {value!r}): {exc}") from None


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


def _validate_sweep(section: SweepConfig, cfg: BacktestConfig) -> None:
    """Cross-field rules of the ``sweep:`` block, run by ``load_config``; each message names the key."""
    if section.method not in ("grid", "random"):
        raise ConfigError(f"'sweep.method' must be 'grid' or 'random', got {section.method!r}")
    if section.objective not in OBJECTIVES:
        raise ConfigError(
            f"'sweep.objective' must be one of {', '.join(OBJECTIVES)}, got {section.objective!r}"
        )
    if section.direction not in ("max", "min"):
        raise ConfigError(f"'sweep.direction' must be 'max' or 'min', got {section.direction!r}")
    for name, low in (("samples", 1), ("top_n", 0), ("threads_per_worker", 1)):
        if getattr(section, name) < low:
            raise ConfigError(f"'sweep.{name}' must be >= {low}, got {getattr(section, name)}")
    if section.workers is not None and section.workers < 1:
        raise ConfigError(f"'sweep.workers' must be >= 1, got {section.workers}")
    if "finetune" in cfg.sections:
        raise ConfigError(
            "a sweep cannot include a 'finetune:' (walk-forward) block yet: its fold models are not shared "
            "between runs; sweep the walk-forward config with `kronos-bt run --set ...` one run at a time"
        )
    base = _base_raw(cfg)
    for key, spec in section.params.items():
        _check_key(base, key, _choices(spec, key, section.method)[0])
    labels = [_asset_label(_asset_raw(item, i)) for i, item in enumerate(section.assets)]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"sweep.assets has duplicate names {dupes}: give each a distinct 'name'")


register_section("sweep", SweepConfig, _validate_sweep)


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
class SweepPlan:
    """What a sweep will do: every run, the forecast shards, the bars per asset and where results go."""

    config: BacktestConfig
    section: SweepConfig
    runs: list[RunSpec]
    shards: list[Shard]
    bars: dict[str, pd.DataFrame]
    out: Path

    @property
    def runs_dir(self) -> Path:
        return self.out / "runs"

    def done(self) -> set[str]:
        """Run ids already written by an earlier (possibly interrupted) sweep."""
        return {run.run_id for run in self.runs if (self.runs_dir / f"{run.run_id}.json").is_file()}


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run_id(raw: Mapping[str, Any], data_fp: str) -> str:
    """Hash of everything a run's result depends on (the config minus bookkeeping, plus the bars)."""
    payload = {k: v for k, v in raw.items() if k not in ("name", "output", "engine", "data")}
    payload["indicator"] = {
        k: v for k, v in payload["indicator"].items() if ("indicator", k) not in _NOT_IN_RUN_ID
    }
    payload["data"] = {k: v for k, v in raw["data"].items() if k in ("name", "tz")}
    return _digest({"config": payload, "bars": data_fp})


def _forecast_group(asset: str, cfg: BacktestConfig) -> str:
    """Runs in one group need the same forecasts (``every`` only picks which of them)."""
    ind = cfg.indicator
    return _digest([asset, dataclasses.astuple(cfg.model), cfg.dates.start, cfg.dates.end, ind.lookback,
                    ind.pred_len, ind.sample_count, ind.T, ind.top_k, ind.top_p, ind.seed])  # fmt: skip


def _shards(group: str, asset: str, runs: list[RunSpec], bars: pd.DataFrame, workers: int) -> list[Shard]:
    """Split a group's forecast bars into contiguous date ranges, at least one batch each."""
    cfg = copy.copy(runs[0].config)
    every = math.gcd(*(run.config.indicator.every for run in runs))
    cfg.indicator = dataclasses.replace(cfg.indicator, every=every)
    lb = cfg.indicator.lookback
    frame, _ = slice_with_warmup(bars, cfg.dates.start, cfg.dates.end, warmup=lb - 1)
    if len(frame) < lb + 2:
        return []  # too short: each run reports InsufficientHistoryError itself
    positions = list(range(lb - 1, len(frame), every))
    size = max(cfg.indicator.batch_size, math.ceil(len(positions) / (2 * workers)))
    chunks = [positions[i : i + size] for i in range(0, len(positions), size)]
    return [Shard(group, asset, cfg, frame.index[c[0] - lb + 1], frame.index[c[-1]], len(c)) for c in chunks]


def plan_sweep(
    config: BacktestConfig | str | Path | Mapping[str, Any],
    *,
    overrides: tuple[str, ...] | list[str] = (),
    out: str | Path | None = None,
    workers: int = 1,
) -> SweepPlan:
    """Expand a config with a ``sweep:`` block into runs and forecast shards (loads the bars, no model)."""
    cfg = config if isinstance(config, BacktestConfig) else load_config(config, overrides)
    section = cfg.sections.get("sweep")
    if section is None:
        raise ConfigError(
            f"{cfg.source or 'the config'} has no 'sweep:' block; add one (see backtests/sp500_sweep.yaml)"
        )
    out_dir = Path(out) if out is not None else Path(section.out.replace("{name}", cfg.name))
    base = _base_raw(cfg)
    cache_dir = cfg.indicator.cache_dir or str(out_dir / "forecast_cache")
    base["indicator"]["cache_dir"] = str(Path(cache_dir).resolve())
    assets = [_asset_raw(item, i) for i, item in enumerate(section.assets)] or [base["data"]]
    runs: list[RunSpec] = []
    bars: dict[str, pd.DataFrame] = {}
    for data in assets:
        label = _asset_label(data)
        with_asset = _set_dotted(base, "data", data)
        first = load_config(with_asset)
        first.source = cfg.source
        bars[label] = load_bars(first)
        data_fp = data_fingerprint(bars[label])
        for params in param_sets(section):
            raw = with_asset
            for key, value in params.items():
                raw = _set_dotted(raw, key, value)
            try:
                run_cfg = load_config(raw)
                _classes(run_cfg)
            except ConfigError as exc:
                raise ConfigError(f"sweep run {label} {params}: {exc}") from None
            if run_cfg.indicator.seed is None:
                raise ConfigError(
                    "sweeps share seeded forecasts: set 'indicator.seed' to an integer, not null"
                )
            run_cfg.source = cfg.source
            runs.append(
                RunSpec(_run_id(raw, data_fp), label, params, run_cfg, _forecast_group(label, run_cfg))
            )
    groups: dict[str, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    shards = [s for g, rs in groups.items() for s in _shards(g, rs[0].asset, rs, bars[rs[0].asset], workers)]
    return SweepPlan(cfg, section, runs, shards, bars, out_dir)


# ----------------------------------------------------------------------------- worker side

_MODELS: dict[tuple[Any, ...], Any] = {}
_MODEL_LOADS: list[int] = [0]
_MODEL_LOCK = threading.Lock()


def worker_predictor(model: ModelConfig) -> Any:
    """The predictor for ``model``, loaded once per process (thread-safe) and reused by every task."""
    key = dataclasses.astuple(model)
    with _MODEL_LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(model)
            _MODEL_LOADS[0] += 1
        return _MODELS[key]


def model_loads() -> int:
    """How many times this process loaded a model (a sweep's workers report 1 per model)."""
    return _MODEL_LOADS[0]


class ModelPlugin(WorkerPlugin):
    """Loads the sweep's model(s) when a worker starts (or restarts) and sets its torch threads."""

    name = "kronos-sweep-models"

    def __init__(self, models: list[ModelConfig], torch_threads: int | None = None) -> None:
        self.models = models
        self.torch_threads = torch_threads

    def setup(self, worker: Any) -> None:
        if self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)
        for model in self.models:
            worker_predictor(model)


class _ForecastOnly(bt.Strategy):
    """Holds the Kronos indicator and never trades: running it fills the forecast cache."""

    params = (("indicator", None), ("indicator_params", None))

    def __init__(self) -> None:
        self.kronos = self.p.indicator(self.data, **self.p.indicator_params)


def precompute_shard(shard: Shard, bars: pd.DataFrame) -> dict[str, Any]:
    """Forecast every window of one shard into the cache; counts of windows computed and reused."""
    cfg = shard.config
    try:
        indicator, _ = _classes(cfg)
        cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True)
        cerebro.adddata(make_feed(bars.loc[shard.first : shard.last], name=shard.asset))
        params = _indicator_params(cfg, worker_predictor(cfg.model)) | {"progress": False}
        cerebro.addstrategy(_ForecastOnly, indicator=indicator, indicator_params=params)
        stats = cerebro.run()[0].kronos.stats
    except KronosError as exc:  # the runs of this group will report it
        return {"group": shard.group, "windows": 0, "computed": 0, "cached": 0, "error": str(exc)}
    return {
        "group": shard.group,
        "windows": stats.windows,
        "computed": stats.computed,
        "cached": stats.cache_hits,
    }


def _identity(value: Any) -> Any:
    return value


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write atomically (temporary file + rename) so a killed worker never leaves half a result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(payload, sort_keys=True, default=str))
    os.replace(tmp, path)


def backtest_run(run: RunSpec, bars: pd.DataFrame, runs_dir: str, after: Any = None) -> dict[str, Any]:
    """Run one backtest (forecasts read from the cache) and write ``<runs_dir>/<run_id>.json``."""
    record: dict[str, Any] = {"run_id": run.run_id, "asset": run.asset, "params": run.params}
    try:
        result = run_backtest(
            run.config, predictor=worker_predictor(run.config.model), bars=bars, write_reports=False
        )
    except KronosError as exc:
        return record | {"error": f"{type(exc).__name__}: {exc}"}  # not written: a re-run retries it
    stats = result.forecast_stats
    record |= {
        "metrics": result.metrics,
        "benchmark": result.benchmark_metrics,
        "forecasts": {"windows": stats.windows, "computed": stats.computed, "cached": stats.cache_hits},
        "model_fingerprint": result.model_fingerprint,
        "data_fingerprint": result.data_fingerprint,
        "seconds": round(result.seconds, 3),
        "process": os.getpid(),
    }
    _write_json(Path(runs_dir) / f"{run.run_id}.json", record)
    return record


def report_run(run: RunSpec, bars: pd.DataFrame, out_dir: str) -> list[str]:
    """Full reports (tear-sheet, chart, metrics, manifest) of one run, from cached forecasts."""
    cfg = copy.copy(run.config)
    cfg.output = dataclasses.replace(cfg.output, tearsheet=True, chart=True)
    result = run_backtest(cfg, predictor=worker_predictor(cfg.model), bars=bars, out_dir=out_dir)
    return [str(p) for p in result.files.values()]


# ----------------------------------------------------------------------------- client side


@dataclass
class SweepResult:
    """A finished sweep: the tidy table (best first), the files written and what it cost."""

    table: pd.DataFrame
    out: Path
    files: dict[str, Path]
    summary: dict[str, Any]

    def __str__(self) -> str:
        return sweep_report.summary_text(self.table, self.summary, self.files)


@contextlib.contextmanager
def _client(
    scheduler: Any, workers: int | None, threads: int, dashboard: bool
) -> Iterator[tuple[Client | None, int, int | None]]:
    """(client, worker count, torch threads per worker); a LocalCluster on 127.0.0.1 unless told otherwise."""
    if scheduler == "sequential":
        yield None, 1, None
        return
    if isinstance(scheduler, Client):
        yield scheduler, max(1, len(scheduler.scheduler_info().get("workers", {}))), None
        return
    if scheduler:
        with Client(scheduler) as client:
            yield client, max(1, len(client.scheduler_info().get("workers", {}))), None
        return
    if dashboard and importlib.util.find_spec("bokeh") is None:
        raise ConfigError(
            "the dask dashboard needs bokeh (pip install 'bokeh>=3.1'); run without --dashboard"
        )
    cores = os.cpu_count() or 1
    n = workers or min(cores, 8)
    cluster = LocalCluster(
        n_workers=n, threads_per_worker=threads, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:8787" if dashboard else None,
    )  # fmt: skip
    with cluster, Client(cluster) as client:
        if dashboard:
            print(f"dask dashboard: {client.dashboard_link}")  # noqa: T201 - asked for with --dashboard
        yield client, n, max(1, cores // (n * threads))


def run_sweep(
    config_path_or_cfg: BacktestConfig | str | Path | Mapping[str, Any],
    *,
    scheduler: str | Client | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    dashboard: bool = False,
    out: str | Path | None = None,
    top_n: int | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    progress: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> SweepResult:
    """Run a sweep: forecasts once into the shared cache, backtests as dask tasks, then table/heatmap/tear-sheets.

    ``scheduler``: None starts a ``LocalCluster`` on 127.0.0.1 (``workers`` processes x ``threads_per_worker``),
    ``"tcp://HOST:PORT"`` uses an existing cluster, a ``distributed.Client`` is used as is, and
    ``"sequential"`` runs every task in this process. Runs already in ``<out>/runs`` are skipped.
    ``on_result`` is called in this process with each finished run's record.
    """
    started = time.perf_counter()
    cfg = config_path_or_cfg
    if not isinstance(cfg, BacktestConfig):
        cfg = load_config(cfg, overrides)
    section = cfg.sections.get("sweep") or SweepConfig()
    scheduler = scheduler if scheduler is not None else section.scheduler
    threads = threads_per_worker or section.threads_per_worker
    top = section.top_n if top_n is None else top_n
    with _client(scheduler, workers or section.workers, threads, dashboard) as (
        client,
        n_workers,
        torch_threads,
    ):
        plan = plan_sweep(cfg, out=out, workers=n_workers)
        done = plan.done()
        todo = [run for run in plan.runs if run.run_id not in done]
        groups = {run.group for run in todo}
        shards = [s for s in plan.shards if s.group in groups]
        if client is None:
            bars: dict[str, Any] = plan.bars
            stats = _run_inline(plan, shards, todo, progress, on_result)
        else:
            models = {dataclasses.astuple(r.config.model): r.config.model for r in plan.runs}
            client.register_plugin(ModelPlugin(list(models.values()), torch_threads))
            # the bars travel inside a task, so dask can recompute them if the worker holding them dies
            token = uuid.uuid4().hex[:8]
            bars = {
                name: client.submit(_identity, frame, key=f"kronos-bars-{name}-{token}", pure=False)
                for name, frame in plan.bars.items()
            }
            stats = _run_dask(plan, bars, shards, todo, client, progress, on_result)
        table = sweep_report.build_table(plan.runs_dir, plan.runs, plan.section)
        best = table["run_id"].head(top).tolist()
        reports = _reports(plan, bars, best, client)
        stats["model_loads"] = client.run(model_loads) if client is not None else {"local": model_loads()}
    summary = {
        "name": cfg.name, "objective": section.objective, "direction": section.direction, "runs": len(plan.runs),
        "skipped": len(done), "executed": len(todo), **stats, "top": reports, "seconds": time.perf_counter() - started,
    }  # fmt: skip
    files = sweep_report.write_outputs(table, plan.out, plan.section, summary)
    return SweepResult(table, plan.out, files, summary)


def _tally(stats: dict[str, Any], kind: str, record: dict[str, Any]) -> None:
    if "error" in record:
        stats["errors"][record.get("run_id") or record.get("group")] = record["error"]
    elif kind == "shard":
        stats["forecasts_computed"] += record["computed"]
        stats["forecasts_reused"] += record["cached"]
    else:
        stats["backtest_forecasts_computed"] += record["forecasts"]["computed"]


def _new_stats() -> dict[str, Any]:
    return {"forecasts_computed": 0, "forecasts_reused": 0, "backtest_forecasts_computed": 0, "errors": {}}


def _run_inline(
    plan: SweepPlan,
    shards: list[Shard],
    todo: list[RunSpec],
    progress: bool,
    on_result: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """The same tasks in this process, one after another (debugging, baselines)."""
    stats = _new_stats()
    with tqdm(total=len(shards) + len(todo), desc=f"sweep {plan.config.name}", disable=not progress) as bar:
        for shard in shards:
            _tally(stats, "shard", precompute_shard(shard, plan.bars[shard.asset]))
            bar.update()
        for run in todo:
            record = backtest_run(run, plan.bars[run.asset], str(plan.runs_dir))
            _tally(stats, "run", record)
            if on_result is not None:
                on_result(record)
            bar.update()
    return stats


def _run_dask(
    plan: SweepPlan,
    bars: dict[str, Any],
    shards: list[Shard],
    todo: list[RunSpec],
    client: Client,
    progress: bool,
    on_result: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """Precompute shards, then backtests that depend on their group's shards, as dask tasks."""
    stats = _new_stats()
    token = uuid.uuid4().hex[:8]
    by_group: dict[str, list[Any]] = {}
    kinds: dict[str, str] = {}
    for k, shard in enumerate(shards):
        key = f"kronos-forecasts-{shard.asset}-{k}-{token}"
        by_group.setdefault(shard.group, []).append(
            client.submit(precompute_shard, shard, bars[shard.asset], key=key, pure=False)
        )
        kinds[key] = "shard"
    futures = [f for fs in by_group.values() for f in fs]
    for run in todo:
        key = f"kronos-backtest-{run.run_id}-{token}"
        deps = by_group.get(run.group, [])
        futures.append(
            client.submit(backtest_run, run, bars[run.asset], str(plan.runs_dir), deps, key=key, pure=False)
        )
        kinds[key] = "run"
    with tqdm(total=len(futures), desc=f"sweep {plan.config.name}", disable=not progress) as bar:
        for future in as_completed(futures):
            record = future.result()
            _tally(stats, kinds[future.key], record)
            if kinds[future.key] == "run" and on_result is not None:
                on_result(record)
            bar.update()
    return stats


def _reports(
    plan: SweepPlan, bars: dict[str, Any], order: list[str], client: Client | None
) -> list[dict[str, Any]]:
    """Tear-sheets of the best runs (in ``order``) under ``<out>/top/<rank>_<asset>_<run_id>/``."""
    by_id = {run.run_id: run for run in plan.runs}
    runs = [by_id[run_id] for run_id in order]
    dirs = [str(plan.out / "top" / f"{i + 1:02d}_{r.asset}_{r.run_id}") for i, r in enumerate(runs)]
    jobs = [(r, bars[r.asset], d) for r, d in zip(runs, dirs, strict=True)]
    if client is None:
        files = [report_run(*job) for job in jobs]
    else:
        files = client.gather([client.submit(report_run, *job, pure=False) for job in jobs])
    return [{"run_id": r.run_id, "dir": d, "files": f} for r, d, f in zip(runs, dirs, files, strict=True)]
