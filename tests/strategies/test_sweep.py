"""Sweeps on a 2-worker dask LocalCluster (127.0.0.1): same numbers as one-by-one runs, forecasts once, resumable."""

from __future__ import annotations

import math
import os
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kronos_strategies.cache import ForecastCache
from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.runner import run_backtest
from kronos_strategies.sweep import SweepConfig, model_loads, param_sets, plan_sweep, run_sweep

distributed = pytest.importorskip("distributed")

LOOKBACK = 16
BARS = 60
ENTER = (0.0, 0.5)
HORIZON = (1, 2)
METRICS = ("total_return", "sharpe", "sortino", "max_drawdown", "trades", "exposure", "hit_rate")


@pytest.fixture(scope="module")
def assets(sp500, tmp_path_factory) -> dict[str, Path]:
    """Two short OHLCV files from different years (a few dozen bars each)."""
    root = tmp_path_factory.mktemp("sweep_data")
    files = {}
    for name, first in (("early", 1000), ("late", 3000)):
        files[name] = root / f"{name}.csv"
        sp500.iloc[first : first + BARS].to_csv(files[name], index_label="timestamp")
    return files


def _raw(assets: dict[str, Path], tiny_dir: Path, cache: Path, **sweep) -> dict:
    """A backtest mapping with a sweep: block over two thresholds x two horizons x two assets."""
    block = {
        "params": {"strategy.params.enter": list(ENTER), "indicator.horizon": list(HORIZON)},
        "assets": [{"path": str(path), "name": name} for name, path in assets.items()],
        "objective": "sharpe",
        "top_n": 0,
    } | sweep
    return {
        "name": "tiny_sweep",
        "data": {"path": str(assets["early"])},
        "model": {"predictor": str(tiny_dir / "predictor"), "tokenizer": str(tiny_dir / "tokenizer")},
        "indicator": {"lookback": LOOKBACK, "pred_len": 2, "horizon": 1, "sample_count": 4, "seed": 0,
                      "cache_dir": str(cache)},
        "strategy": {"name": "threshold", "params": {"enter": 0.1, "exit": 0.0}},
        "output": {"tearsheet": False, "chart": False},
        "engine": {"progress": False},
        "sweep": block,
    }  # fmt: skip


@pytest.fixture(scope="module")
def client():
    """Two worker processes, loopback only, no dashboard."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster, distributed.Client(cluster) as c:  # fmt: skip
        yield c


@pytest.fixture(scope="module")
def reference(client, assets, tiny_dir, tmp_path_factory):
    """One complete sweep on the cluster (with a top-1 tear-sheet); its table is the reference."""
    root = tmp_path_factory.mktemp("sweep_ref")
    raw = _raw(assets, tiny_dir, root / "cache", top_n=1)
    result = run_sweep(raw, scheduler=client, out=root / "out")
    return raw, root, result


# ----------------------------------------------------------------------------- config, no cluster


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "strategy.params.entr",
            r"bad sweep key 'strategy.params.entr'.*did you mean 'strategy.params.enter'",
        ),
        ("indicator.lookbak", r"bad sweep key 'indicator.lookbak'.*did you mean 'indicator.lookback'"),
        ("brokr.cash", r"sweep key 'brokr.cash' cannot be swept"),
        ("output.dir", r"sweep key 'output.dir' cannot be swept"),
        ("broker.cash.usd", r"sweep key 'broker.cash.usd': 'broker.cash' is a value"),
        ("finetune.stepz", r"bad sweep key 'finetune.stepz'.*did you mean 'finetune.steps'"),
    ],
)
def test_bad_sweep_keys_are_named(assets, tiny_dir, tmp_path, key, message):
    raw = _raw(assets, tiny_dir, tmp_path / "cache")
    raw["sweep"]["params"] = {"strategy.params.enter": [0.1], key: [1]}
    with pytest.raises(ConfigError, match=message):
        load_config(raw)


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"objective": "sharp"}, r"'sweep.objective' must be one of"),
        ({"method": "bayes"}, r"'sweep.method' must be 'grid' or 'random'"),
        (
            {"params": {"strategy.params.enter": []}},
            r"sweep.params\['strategy.params.enter'\] must be a non-empty",
        ),
        ({"method": "random", "params": {"strategy.params.enter": {"low": 1, "high": 0}}}, r"low < high"),
        ({"assets": [{"path": "a.csv", "nme": "x"}]}, r"unknown key 'sweep.assets\[0\].nme'"),
        ({"params": {"indicator.horizon": [9]}}, r"'indicator.horizon' must be in \[1, pred_len=2\]"),
    ],
)
def test_bad_sweep_blocks_are_named(assets, tiny_dir, tmp_path, sweep, message):
    raw = _raw(assets, tiny_dir, tmp_path / "cache")
    raw["sweep"] |= sweep
    with pytest.raises(ConfigError, match=message):
        load_config(raw)


def test_grid_and_random_parameter_sets():
    grid = SweepConfig(params={"a.x": [1, 2, 3], "b.y": ["p", "q"]})
    sets = param_sets(grid)
    assert len(sets) == 6 and {"a.x": 3, "b.y": "q"} in sets
    spec = {"a.x": {"low": 0.1, "high": 10.0, "log": True}, "b.y": {"low": 2, "high": 5}, "c.z": [7, 8]}
    draws = param_sets(SweepConfig(method="random", params=spec, samples=25, seed=3))
    assert draws == param_sets(SweepConfig(method="random", params=spec, samples=25, seed=3))
    assert draws != param_sets(SweepConfig(method="random", params=spec, samples=25, seed=4))
    assert all(0.1 <= d["a.x"] <= 10.0 and d["b.y"] in (2, 3, 4, 5) and d["c.z"] in (7, 8) for d in draws)
    assert all(isinstance(d["b.y"], int) for d in draws)


def test_plan_groups_forecasts_by_asset_and_sampling(assets, tiny_dir, tmp_path):
    """Horizon and thresholds share forecasts; a different lookback is its own group."""
    raw = _raw(assets, tiny_dir, tmp_path / "cache")
    plan = plan_sweep(raw, out=tmp_path / "out", workers=2)
    assert len(plan.runs) == 2 * len(ENTER) * len(HORIZON)
    assert len({run.group for run in plan.runs}) == 2
    assert len({run.run_id for run in plan.runs}) == len(plan.runs)
    windows = BARS - LOOKBACK + 1
    assert sum(s.windows for s in plan.shards) == 2 * windows
    raw["sweep"]["params"]["indicator.lookback"] = [LOOKBACK, LOOKBACK + 4]
    assert len({run.group for run in plan_sweep(raw, out=tmp_path / "out").runs}) == 4


# ----------------------------------------------------------------------------- on the cluster


def _http_sockets(dask_scheduler=None, dask_worker=None) -> list:
    node = dask_scheduler or dask_worker
    return [sock.getsockname()[0] for sock in node.http_server._sockets.values()]


def test_cluster_binds_loopback_only_and_serves_no_dashboard(client):
    info = client.scheduler_info()
    addresses = [client.scheduler.address, *info["workers"], *(w["nanny"] for w in info["workers"].values())]
    assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
    hosts = client.run_on_scheduler(_http_sockets) + sum(client.run(_http_sockets).values(), [])
    assert set(hosts) == {"127.0.0.1"}
    with pytest.raises(urllib.error.HTTPError, match="404"):  # the /status dashboard page is not served
        urllib.request.urlopen(f"http://127.0.0.1:{info['services']['dashboard']}/status", timeout=10)


def _one_by_one(raw: dict, assets: dict[str, Path], cache: Path) -> dict[tuple, dict]:
    """Every run of the sweep as a plain backtest in this process, with its own fresh cache."""
    base = {k: v for k, v in raw.items() if k != "sweep"}
    out = {}
    for name, path in assets.items():
        for enter in ENTER:
            for horizon in HORIZON:
                cfg = load_config(base, [f"data.path={path}", f"data.name={name}", f"strategy.params.enter={enter}",
                                         f"indicator.horizon={horizon}", f"indicator.cache_dir={cache}"])  # fmt: skip
                out[(name, enter, horizon)] = run_backtest(cfg, write_reports=False).metrics
    return out


def _same(a: object, b: object) -> bool:
    missing = (
        a is None or (isinstance(a, float) and math.isnan(a)),
        b is None or (isinstance(b, float) and math.isnan(b)),
    )
    return all(missing) or a == b


def test_sweep_equals_one_by_one_runs_and_forecasts_each_window_once(client, reference, assets, tmp_path):
    raw, root, result = reference
    table = result.table
    assert len(table) == 2 * len(ENTER) * len(HORIZON)
    solo = _one_by_one(raw, assets, tmp_path / "solo_cache")
    for row in table.to_dict("records"):
        expected = solo[(row["asset"], row["strategy.params.enter"], row["indicator.horizon"])]
        for metric in METRICS:
            assert _same(row[metric], expected[metric]), (row["asset"], metric, row[metric], expected[metric])
    # every (asset, window) forecast exactly once, all before the backtests, which only read the cache
    windows = 2 * (BARS - LOOKBACK + 1)
    assert result.summary["forecasts_computed"] == windows
    assert result.summary["backtest_forecasts_computed"] == 0
    assert len(ForecastCache(root / "cache")) == windows
    assert set(client.run(model_loads).values()) == {1}  # each worker process loaded the model once
    sharpe = table["sharpe"].to_numpy()
    assert all(sharpe[i] >= sharpe[i + 1] for i in range(len(sharpe) - 1) if not math.isnan(sharpe[i + 1]))
    for name in ("results.parquet", "results.csv", "heatmap.png", "sweep.json"):
        assert (root / "out" / name).is_file(), name
    pd.testing.assert_frame_equal(pd.read_parquet(root / "out" / "results.parquet"), table)
    (top,) = result.summary["top"]
    assert top["run_id"] == table["run_id"].iloc[0]
    assert (Path(top["dir"]) / "tearsheet.html").stat().st_size > 10_000


@pytest.mark.slow  # a fast representative stays in the default tier
def test_killed_worker_then_rerun_gives_the_complete_identical_table(client, reference, tmp_path):
    raw, root, ref = reference
    killed: list[int] = []

    def kill_one_worker(record: dict) -> None:
        if not killed:  # mid-sweep: the first run is done, the others are queued or running
            pid = sorted(client.run(os.getpid).values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    first = run_sweep(raw, scheduler=client, out=tmp_path / "out", on_result=kill_one_worker)
    assert killed and killed[0] not in client.run(os.getpid).values()
    again = run_sweep(raw, scheduler=client, out=tmp_path / "out")
    assert again.summary["skipped"] == len(ref.table) and again.summary["executed"] == 0
    pd.testing.assert_frame_equal(first.table, ref.table)
    pd.testing.assert_frame_equal(again.table, ref.table)


def test_interrupted_sweep_resumes_where_it_stopped(reference, tmp_path):
    """Ctrl-C after three runs (here in-process), then a re-run: only the rest run, same table."""
    raw, root, ref = reference
    seen: list[str] = []

    def interrupt(record: dict) -> None:
        seen.append(record["run_id"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(raw, scheduler="sequential", out=tmp_path / "out", on_result=interrupt)
    kept = {p.stem for p in (tmp_path / "out" / "runs").glob("*.json")}
    assert kept == set(seen)
    resumed = run_sweep(raw, scheduler="sequential", out=tmp_path / "out")
    assert resumed.summary["skipped"] == 3 and resumed.summary["executed"] == len(ref.table) - 3
    assert resumed.summary["forecasts_computed"] == 0  # the shared cache already holds every window
    pd.testing.assert_frame_equal(resumed.table, ref.table)


def test_cli_sweep_reads_yaml_and_rejects_bad_keys(reference, tmp_path, capsys):
    from kronos_strategies.cli import main

    raw, root, ref = reference
    bad = tmp_path / "bad.yaml"
    broken = dict(raw, sweep=dict(raw["sweep"], params={"strategy.params.entr": [0.1]}))
    bad.write_text(yaml.safe_dump(broken, sort_keys=False))
    assert main(["sweep", str(bad), "--scheduler", "sequential", "--no-progress"]) == 2
    assert "strategy.params.entr" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp_path / "cli_out"
    args = ["sweep", str(good), "--scheduler", "sequential", "--no-progress", "--out", str(out), "--top", "0"]
    (out / "runs").mkdir(parents=True)
    for done in (root / "out" / "runs").glob("*.json"):  # results of the reference: the CLI skips them all
        (out / "runs" / done.name).write_bytes(done.read_bytes())
    assert main(args) == 0
    assert f"{len(ref.table)} runs (0 run now, {len(ref.table)} already done)" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), ref.table)


# ----------------------------------------------------------------------------- walk-forward inside a sweep

WF_BARS = 200  # 100 bars of history, then 3 folds of 40, 40 and 20 traded bars
WF_STEPS = (1, 2)
WF_FOLDS = 3


def _wf_raw(sp500, tmp_path: Path, tiny_dir: Path, cache: Path) -> dict:
    """A one-asset sweep over thresholds x fine-tuning steps, with a refit every 40 bars."""
    path = tmp_path / "wf.csv"
    if not path.exists():
        sp500.iloc[2000 : 2000 + WF_BARS].to_csv(path, index_label="timestamp")
    raw = _raw({"early": path}, tiny_dir, cache)  # one asset, named like the other tests' first
    raw["dates"] = {"start": str(sp500.index[2100].date())}
    raw["finetune"] = {"every": 40, "window": 80, "steps": 2, "batch_size": 8, "val_bars": 20,
                       "max_val_windows": 4, "compare_base": False, "progress": False}  # fmt: skip
    raw["sweep"]["params"] = {"strategy.params.enter": list(ENTER), "finetune.steps": list(WF_STEPS)}
    return raw


def test_plan_walkforward_jobs_split_by_finetune_settings(sp500, tiny_dir, tmp_path):
    """Each finetune.steps value is its own job; sampling variants of one job share its fold models."""
    raw = _wf_raw(sp500, tmp_path, tiny_dir, tmp_path / "cache")
    plan = plan_sweep(raw, out=tmp_path / "out")
    assert not plan.shards and len(plan.walkforward) == len(WF_STEPS)
    assert len({run.group for run in plan.runs}) == len(WF_STEPS)
    assert sorted(job.configs[0].finetune.steps for job in plan.walkforward) == list(WF_STEPS)
    raw["sweep"]["params"]["indicator.sample_count"] = [4, 6]
    plan = plan_sweep(raw, out=tmp_path / "out")
    assert len(plan.walkforward) == len(WF_STEPS)
    assert len({run.group for run in plan.runs}) == 2 * len(WF_STEPS)
    assert all(len(job.groups) == 2 for job in plan.walkforward)


def test_walkforward_sweep_trains_each_fold_once_before_the_backtests(sp500, tiny_dir, tmp_path, monkeypatch):
    """In-process: the precompute trains and forecasts everything; the backtests train and compute nothing."""
    from kronos_model import KronosPredictor
    from kronos_strategies.sweep import run as sweep
    from kronos_strategies.walkforward import engine as walkforward

    phase = ["precompute"]
    finetunes = {"precompute": 0, "backtest": 0}
    windows = {"precompute": 0, "backtest": 0}
    real_finetune, real_forecast = walkforward.finetune, KronosPredictor.forecast_batch
    real_backtest = sweep.backtest_run

    def counting_finetune(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        finetunes[phase[0]] += 1
        return real_finetune(*args, **kwargs)

    def counting_forecast(self, df_list, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        windows[phase[0]] += len(df_list)
        return real_forecast(self, df_list, *args, **kwargs)

    def backtest_phase(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        phase[0] = "backtest"
        return real_backtest(*args, **kwargs)

    monkeypatch.setattr(walkforward, "finetune", counting_finetune)
    monkeypatch.setattr(KronosPredictor, "forecast_batch", counting_forecast)
    monkeypatch.setattr(sweep, "backtest_run", backtest_phase)
    raw = _wf_raw(sp500, tmp_path, tiny_dir, tmp_path / "cache")
    result = run_sweep(raw, scheduler="sequential", out=tmp_path / "out")
    traded = WF_BARS - 100
    assert finetunes == {"precompute": WF_FOLDS * len(WF_STEPS), "backtest": 0}
    assert windows == {"precompute": traded * len(WF_STEPS), "backtest": 0}
    s = result.summary
    assert (s["folds_trained"], s["forecasts_computed"]) == (WF_FOLDS * len(WF_STEPS), traded * len(WF_STEPS))
    assert s["backtest_forecasts_computed"] == 0 and not s["errors"] and len(result.table) == 4
    fold_files = list((tmp_path / "cache" / "walkforward").glob("*/fold.json"))
    assert len(fold_files) == WF_FOLDS * len(WF_STEPS)
    # a second sweep over the same caches (new output folder) trains and computes nothing at all
    phase[0] = "precompute"
    again = run_sweep(raw, scheduler="sequential", out=tmp_path / "out2")
    assert sum(finetunes.values()) == WF_FOLDS * len(WF_STEPS)
    assert sum(windows.values()) == traded * len(WF_STEPS)
    assert (again.summary["folds_trained"], again.summary["forecasts_computed"]) == (0, 0)
    pd.testing.assert_frame_equal(again.table, result.table)


@pytest.mark.slow  # a fast representative stays in the default tier
def test_walkforward_sweep_on_the_cluster_equals_one_by_one_runs(client, sp500, tiny_dir, tmp_path):
    raw = _wf_raw(sp500, tmp_path, tiny_dir, tmp_path / "cache")
    result = run_sweep(raw, scheduler=client, out=tmp_path / "out")
    s = result.summary
    assert not s["errors"] and len(result.table) == len(ENTER) * len(WF_STEPS)
    assert s["folds_trained"] == WF_FOLDS * len(WF_STEPS)  # summed over the tasks: no fold trained twice
    assert len(list((tmp_path / "cache" / "walkforward").glob("*/fold.json"))) == s["folds_trained"]
    assert s["forecasts_computed"] == (WF_BARS - 100) * len(WF_STEPS)
    assert s["backtest_forecasts_computed"] == 0
    base = {k: v for k, v in raw.items() if k != "sweep"}
    for row in result.table.to_dict("records"):
        cfg = load_config(base, [f"strategy.params.enter={row['strategy.params.enter']}",
                                 f"finetune.steps={row['finetune.steps']}", f"indicator.cache_dir={tmp_path / 'solo'}"])  # fmt: skip
        solo = run_backtest(cfg, write_reports=False).metrics
        for metric in METRICS:
            got = (row["finetune.steps"], metric, row[metric], solo[metric])
            assert _same(row[metric], solo[metric]), got
