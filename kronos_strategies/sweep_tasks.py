"""Sweep tasks run on dask workers: the model loaded once per process, forecast shards, backtests, reports."""

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

from .config import ModelConfig
from .feeds import make_feed
from .runner import indicator_params, load_model, run_backtest, strategy_classes
from .sweep_plan import RunSpec, Shard

__all__ = ["ModelPlugin", "backtest_run", "model_loads", "precompute_shard", "report_run", "worker_predictor"]

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
        indicator, _ = strategy_classes(cfg)
        cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True)
        cerebro.adddata(make_feed(bars.loc[shard.first : shard.last], name=shard.asset))
        params = indicator_params(cfg, worker_predictor(cfg.model)) | {"progress": False}
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


def identity(value: Any) -> Any:
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
