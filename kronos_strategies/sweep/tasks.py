"""Sweep tasks run on dask workers: the model loaded once per process, forecast shards, walk-forward
precomputes, backtests, reports."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd
from distributed import WorkerPlugin

from kronos_model.errors import KronosError

from .. import walkforward
from ..config import BacktestConfig, ModelConfig
from ..feeds import make_feed, slice_with_warmup
from ..runner import indicator_params, load_model, run_backtest, strategy_classes
from .plan import RunSpec, Shard, WalkForwardJob
from .universes import UniverseShard

__all__ = [
    "ModelPlugin", "backtest_run", "model_loads", "precompute_shard", "precompute_universe", "precompute_walkforward",
    "report_run", "worker_predictor",
]  # fmt: skip

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


def _fill_cache(cfg: BacktestConfig, frame: pd.DataFrame, predictor: Any, name: str) -> Any:
    """Run the indicator alone over ``frame`` so its forecasts land in the cache; its forecast stats."""
    indicator, _ = strategy_classes(cfg)
    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True)
    cerebro.adddata(make_feed(frame, name=name))
    params = indicator_params(cfg, predictor) | {"progress": False}
    cerebro.addstrategy(_ForecastOnly, indicator=indicator, indicator_params=params)
    return cerebro.run()[0].kronos.stats


def precompute_shard(shard: Shard, bars: pd.DataFrame) -> dict[str, Any]:
    """Forecast every window of one shard into the cache; counts of windows computed and reused."""
    cfg = shard.config
    try:
        frame = bars.loc[shard.first : shard.last]
        stats = _fill_cache(cfg, frame, worker_predictor(cfg.model), shard.asset)
    except KronosError as exc:  # the runs of this group will report it
        return {"group": shard.group, "windows": 0, "computed": 0, "cached": 0, "error": str(exc)}
    return {
        "group": shard.group,
        "windows": stats.windows,
        "computed": stats.computed,
        "cached": stats.cache_hits,
    }


def precompute_universe(shard: UniverseShard, frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Forecast every traded window of the shard's assets (on its universe's calendar) into the cache.

    With a ``finetune:`` block (walk-forward) it trains or loads every fold's model and forecasts each fold with it.
    """
    from ..universe.runner import prepare_universe

    cfg = shard.config
    trained = 0
    try:
        _, forecaster = prepare_universe(cfg, frames, worker_predictor(cfg.model))
        if cfg.finetune is not None:
            from ..walkforward.universe import run_universe_walkforward

            trained = sum(f.trained for f in run_universe_walkforward(cfg, frames, forecaster))
        else:
            forecaster.precompute(assets=shard.names)
    except KronosError as exc:  # the runs of this universe will report it
        return {"group": shard.group, "windows": 0, "computed": 0, "cached": 0, "error": str(exc)}
    stats = forecaster.stats
    return {
        "group": shard.group,
        "windows": stats.windows,
        "computed": stats.computed,
        "cached": stats.cache_hits,
        "trained": trained,
    }


def precompute_walkforward(job: WalkForwardJob, bars: pd.DataFrame) -> dict[str, Any]:
    """Train (or load) every fold of one walk-forward job once and forecast each of its groups into the caches.

    The groups run one after another, so the backtests after it only load fold records and read forecasts.
    """
    record: dict[str, Any] = {
        "group": job.key,
        "groups": job.groups,
        "trained": 0,
        "computed": 0,
        "cached": 0,
    }
    for cfg in job.configs:
        lookback = cfg.indicator.lookback
        try:  # the traded span as the runner sets it: from the first bar with a full lookback window
            frame, start = slice_with_warmup(bars, cfg.dates.start, cfg.dates.end, warmup=lookback - 1)
            if len(frame) < lookback + 2:
                continue  # too short: each run reports InsufficientHistoryError itself
            start = max(start, frame.index[lookback - 1])
            result = walkforward.walkforward_for(
                cfg, worker_predictor(cfg.model), bars, start, frame.index[-1]
            )
            # the indicator's own cache entries (keyed by the walk-forward model), served from the fold forecasts
            _fill_cache(cfg, frame, result.predictor, job.asset)
        except KronosError as exc:  # the runs of this group will report it
            record.setdefault("error", f"{type(exc).__name__}: {exc}")
            continue
        served = sum(len(o.positions) * (2 if o.base_forecasts is not None else 1) for o in result.folds)
        computed = sum(o.computed for o in result.folds)
        record["trained"] += result.trained
        record["computed"] += computed + result.predictor.computed
        record["cached"] += served - computed
    return record


def identity(value: Any) -> Any:
    return value


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write atomically (temporary file + rename) so a killed worker never leaves half a result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(payload, sort_keys=True, default=str))
    os.replace(tmp, path)


def backtest_run(run: RunSpec, bars: Any, runs_dir: str, after: Any = None) -> dict[str, Any]:
    """Run one backtest (forecasts read from the cache) and write ``<runs_dir>/<run_id>.json``.

    ``bars`` is the asset's frame, or for a universe run its frames by asset name; a universe run's metrics
    also hold the signal's cross-sectional IC and RankIC (mean and ICIR) at the horizon.
    """
    record: dict[str, Any] = {"run_id": run.run_id, "asset": run.asset, "params": run.params}
    predictor = worker_predictor(run.config.model)
    try:
        if run.config.universe is not None:
            from ..universe.runner import run_universe_backtest

            result = run_universe_backtest(run.config, predictor=predictor, frames=bars, write_reports=False)
            metrics = result.metrics | cross_sectional_metrics(result.signal_metrics)
            data_fp = result.signal_metrics["data_fingerprints"]
        else:
            result = run_backtest(run.config, predictor=predictor, bars=bars, write_reports=False)
            metrics, data_fp = result.metrics, result.data_fingerprint
    except KronosError as exc:
        return record | {"error": f"{type(exc).__name__}: {exc}"}  # not written: a re-run retries it
    stats = result.forecast_stats
    record |= {
        "metrics": metrics,
        "benchmark": result.benchmark_metrics,
        "forecasts": {"windows": stats.windows, "computed": stats.computed, "cached": stats.cache_hits},
        "model_fingerprint": result.model_fingerprint,
        "data_fingerprint": data_fp,
        "seconds": round(result.seconds, 3),
        "process": os.getpid(),
    }
    _write_json(Path(runs_dir) / f"{run.run_id}.json", record)
    return record


def cross_sectional_metrics(signal: dict[str, Any]) -> dict[str, Any]:
    """The signal report's IC / RankIC mean and ICIR as flat metrics (sweep table columns and objectives)."""
    ic, rank = signal["ic"], signal["rank_ic"]
    return {"ic": ic["mean"], "ic_icir": ic["icir"], "rank_ic": rank["mean"], "rank_ic_icir": rank["icir"]}


def report_run(run: RunSpec, bars: Any, out_dir: str) -> list[str]:
    """Full reports (tear-sheet, chart, metrics, manifest) of one run, from cached forecasts."""
    cfg = copy.copy(run.config)
    cfg.output = dataclasses.replace(cfg.output, tearsheet=True, chart=True)
    predictor = worker_predictor(cfg.model)
    if cfg.universe is not None:
        from ..universe.runner import run_universe_backtest

        result = run_universe_backtest(cfg, predictor=predictor, frames=bars, out_dir=out_dir)
    else:
        result = run_backtest(cfg, predictor=predictor, bars=bars, out_dir=out_dir)
    return [str(p) for p in result.files.values()]
