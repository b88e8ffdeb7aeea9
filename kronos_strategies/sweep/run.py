"""Parameter sweeps over many assets on dask.distributed, sharing one content-addressed forecast cache.

A backtest YAML with a ``sweep:`` block expands into runs (assets x parameter sets). The expensive part,
the Kronos forecasts, depends only on (asset, model, sampling settings), so it is computed first, once,
sharded over the workers by asset and date range into the shared :class:`~kronos_strategies.cache.ForecastCache`.
The cheap backtests then run as dask tasks that only read the cache. Each finished run is written at
once as ``<out>/runs/<run_id>.json`` (the id hashes everything the run depends on), so a killed worker
or an interrupted sweep loses nothing and a re-run skips what is done. At the end: a tidy table
(Parquet + CSV), a heatmap of the objective over the two most influential parameters and full
tear-sheets of the best runs.

A re-run with nothing to do (every run recorded, every top run's report on disk) starts no cluster and
loads no model: run ids hash the model's checkpoint files (:mod:`.fingerprint`), not the loaded weights.
With a ``universe:`` block a run is one universe backtest, its forecasts are sharded by asset
(:mod:`.universes`) and the table gains the signal's IC and RankIC.

With a ``finetune:`` (walk-forward) block the precompute is one task per (asset, model, fine-tuning
settings): it trains each fold model once, in order, and forecasts every sampling variant with it, so
the backtests load fold records and read forecasts but train nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from distributed import Client, LocalCluster, as_completed
from tqdm.auto import tqdm

from ..config import BacktestConfig, load_config
from ..errors import ConfigError
from . import report as sweep_report
from .plan import (
    RunSpec,
    Shard,
    SweepConfig,
    SweepPlan,
    WalkForwardJob,
    plan_sweep,
)  # fmt: skip
from .tasks import (
    ModelPlugin,
    backtest_run,
    identity,
    model_loads,
    precompute_shard,
    precompute_universe,
    precompute_walkforward,
    report_run,
)  # fmt: skip
from .universes import UniverseShard

__all__ = ["SweepResult", "run_sweep"]

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
    n = _local_workers(workers)
    cluster = LocalCluster(
        n_workers=n, threads_per_worker=threads, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:8787" if dashboard else None,
    )  # fmt: skip
    with cluster, Client(cluster) as client:
        if dashboard:
            print(f"dask dashboard: {client.dashboard_link}")  # noqa: T201 - asked for with --dashboard
        yield client, n, max(1, cores // (n * threads))


def _local_workers(workers: int | None) -> int:
    """Worker processes of a local cluster: as asked, else one per CPU core, at most 8."""
    return workers or min(os.cpu_count() or 1, 8)


def _planned_workers(scheduler: Any, workers: int | None) -> int:
    """How many workers the plan cuts shards for, known before any cluster starts (an estimate for a remote one)."""
    if scheduler == "sequential":
        return 1
    if isinstance(scheduler, Client):
        return max(1, len(scheduler.scheduler_info().get("workers", {})))
    return _local_workers(workers)


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
    section = cfg.sweep or SweepConfig()
    scheduler = scheduler if scheduler is not None else section.scheduler
    threads = threads_per_worker or section.threads_per_worker
    top = section.top_n if top_n is None else top_n
    plan = plan_sweep(cfg, out=out, workers=_planned_workers(scheduler, workers or section.workers))
    done = plan.done()
    todo = [run for run in plan.runs if run.run_id not in done]
    groups = {run.group for run in todo}
    shards: list[Shard | UniverseShard | WalkForwardJob] = [s for s in plan.shards if s.group in groups]
    shards += [job for job in (j.only(groups) for j in plan.walkforward) if job is not None]
    table = sweep_report.build_table(plan.runs_dir, plan.runs, plan.section) if not todo else None
    if table is not None and _reports_on_disk(plan, table, top):  # nothing to do: no cluster, no model
        stats = _new_stats() | {"model_loads": {}, "cluster": False}
        summary = {
            "name": cfg.name, "objective": section.objective, "direction": section.direction,
            "runs": len(plan.runs), "skipped": len(done), "executed": 0, **stats,
            "top": _reports(plan, {}, table["run_id"].head(top).tolist(), None),
            "seconds": time.perf_counter() - started,
        }  # fmt: skip
        files = sweep_report.write_outputs(table, plan.out, plan.section, summary)
        return SweepResult(table, plan.out, files, summary)
    with _client(scheduler, workers or section.workers, threads, dashboard) as (
        client,
        n_workers,
        torch_threads,
    ):
        if client is None:
            bars: dict[str, Any] = plan.bars
            stats = _run_inline(plan, shards, todo, progress, on_result)
        else:
            models = {dataclasses.astuple(r.config.model): r.config.model for r in plan.runs}
            client.register_plugin(ModelPlugin(list(models.values()), torch_threads))
            # the bars travel inside a task, so dask can recompute them if the worker holding them dies
            token = uuid.uuid4().hex[:8]
            bars = {
                name: client.submit(identity, frame, key=f"kronos-bars-{name}-{token}", pure=False)
                for name, frame in plan.bars.items()
            }
            stats = _run_dask(plan, bars, shards, todo, client, progress, on_result)
        table = sweep_report.build_table(plan.runs_dir, plan.runs, plan.section)
        best = table["run_id"].head(top).tolist()
        reports = _reports(plan, bars, best, client)
        stats["model_loads"] = client.run(model_loads) if client is not None else {"local": model_loads()}
        stats["cluster"] = client is not None
    summary = {
        "name": cfg.name, "objective": section.objective, "direction": section.direction, "runs": len(plan.runs),
        "skipped": len(done), "executed": len(todo), **stats, "top": reports, "seconds": time.perf_counter() - started,
    }  # fmt: skip
    files = sweep_report.write_outputs(table, plan.out, plan.section, summary)
    return SweepResult(table, plan.out, files, summary)


def _tally(stats: dict[str, Any], kind: str, record: dict[str, Any]) -> None:
    if "error" in record:
        stats["errors"][record.get("run_id") or record.get("group")] = record["error"]
    if kind == "shard":  # a walk-forward job's counts stand even when one of its groups failed
        stats["forecasts_computed"] += record["computed"]
        stats["forecasts_reused"] += record["cached"]
        stats["folds_trained"] += record.get("trained", 0)
    elif "error" not in record:
        stats["backtest_forecasts_computed"] += record["forecasts"]["computed"]


def _new_stats() -> dict[str, Any]:
    return {"forecasts_computed": 0, "forecasts_reused": 0, "backtest_forecasts_computed": 0, "folds_trained": 0,
            "errors": {}}  # fmt: skip


def _precompute(shard: Shard | UniverseShard | WalkForwardJob, bars: Any) -> dict[str, Any]:
    """The precompute task of a forecast shard (an asset's dates or a universe's assets) or of a walk-forward job."""
    if isinstance(shard, WalkForwardJob):
        return precompute_walkforward(shard, bars)
    if isinstance(shard, UniverseShard):
        return precompute_universe(shard, bars)
    return precompute_shard(shard, bars)


def _run_inline(
    plan: SweepPlan,
    shards: list[Shard | UniverseShard | WalkForwardJob],
    todo: list[RunSpec],
    progress: bool,
    on_result: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """The same tasks in this process, one after another (debugging, baselines)."""
    stats = _new_stats()
    with tqdm(total=len(shards) + len(todo), desc=f"sweep {plan.config.name}", disable=not progress) as bar:
        for shard in shards:
            _tally(stats, "shard", _precompute(shard, plan.bars[shard.asset]))
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
    shards: list[Shard | UniverseShard | WalkForwardJob],
    todo: list[RunSpec],
    client: Client,
    progress: bool,
    on_result: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """Precompute shards and walk-forward jobs, then backtests that depend on their group's, as dask tasks."""
    stats = _new_stats()
    token = uuid.uuid4().hex[:8]
    by_group: dict[str, list[Any]] = {}
    kinds: dict[str, str] = {}
    for k, shard in enumerate(shards):
        key = f"kronos-forecasts-{shard.asset}-{k}-{token}"
        future = client.submit(_precompute, shard, bars[shard.asset], key=key, pure=False)
        for group in shard.groups if isinstance(shard, WalkForwardJob) else [shard.group]:
            by_group.setdefault(group, []).append(future)
        kinds[key] = "shard"
    futures = list({f.key: f for fs in by_group.values() for f in fs}.values())
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


def _top_dirs(plan: SweepPlan, order: list[str]) -> list[tuple[RunSpec, Path]]:
    """The best runs (in ``order``) and their report folders ``<out>/top/<rank>_<asset>_<run_id>/``."""
    by_id = {run.run_id: run for run in plan.runs}
    runs = [by_id[run_id] for run_id in order]
    return [(r, plan.out / "top" / f"{i + 1:02d}_{_slug(r.asset)}_{r.run_id}") for i, r in enumerate(runs)]


def _slug(label: str) -> str:
    """An asset or universe label as one folder-name part (a glob's slashes and stars replaced)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in label).strip("_") or "run"


def _reports_on_disk(plan: SweepPlan, table: pd.DataFrame, top: int) -> bool:
    """Whether the best ``top`` runs of ``table`` have their reports written (the run ids fix their content)."""
    return all(
        (d / "manifest.json").is_file() for _, d in _top_dirs(plan, table["run_id"].head(top).tolist())
    )


def _reports(
    plan: SweepPlan, bars: dict[str, Any], order: list[str], client: Client | None
) -> list[dict[str, Any]]:
    """Tear-sheets of the best runs (in ``order``); a report already on disk is kept, not redone."""
    pairs = _top_dirs(plan, order)
    files: dict[str, list[str]] = {}
    jobs = []
    for r, d in pairs:
        if (d / "manifest.json").is_file():
            files[str(d)] = sorted(str(p) for p in d.iterdir() if p.is_file())
        else:
            jobs.append((r, bars[r.asset], str(d)))
    if client is None:
        made = [report_run(*job) for job in jobs]
    else:
        made = client.gather([client.submit(report_run, *job, pure=False) for job in jobs])
    files |= {job[2]: sorted(f) for job, f in zip(jobs, made, strict=True)}
    return [{"run_id": r.run_id, "dir": str(d), "files": files[str(d)]} for r, d in pairs]
