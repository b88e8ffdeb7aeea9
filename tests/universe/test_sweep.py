"""Sweeps over universe strategies and over universes: same numbers as one-by-one universe backtests, the
cross-sectional metrics in the table, forecasts once, and a re-run with nothing to do starts nothing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file, save_file

from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.sweep import plan_sweep, run_sweep
from kronos_strategies.universe.runner import run_universe_backtest

from .conftest import TINY, make_assets, universe_config

K = (1, 2)
N_DROP = (1, None)
METRICS = ("total_return", "sharpe", "max_drawdown", "turnover", "ic", "rank_ic", "ic_icir", "rank_ic_icir")
UNIVERSES = {"first": ("A", "B", "C"), "second": ("C", "D", "E")}


@pytest.fixture(scope="module")
def folders(sp500_bars, tmp_path_factory) -> dict[str, Path]:
    """Two universes of three daily CSV files each (one asset in both), 60 bars per asset."""
    frames = make_assets(sp500_bars, n=5, bars=60)
    root = tmp_path_factory.mktemp("universes")
    out = {}
    for label, names in UNIVERSES.items():
        out[label] = root / label
        out[label].mkdir()
        for name in names:
            frames[name].to_csv(out[label] / f"{name}.csv", index_label="timestamp")
    return out


def _raw(tmp_path: Path, folders: dict[str, Path], **sweep) -> dict:
    raw = universe_config(tmp_path, "topk", k=1, n_drop=1, rebalance=2)
    raw["universe"] = {"data_dir": str(folders["first"])}
    raw["sweep"] = {
        "params": {"strategy.params.k": list(K), "strategy.params.n_drop": list(N_DROP)},
        "universes": [{"data_dir": str(path), "name": label} for label, path in folders.items()],
        "objective": "rank_ic",
        "top_n": 0,
    } | sweep
    return raw


def _solo(raw: dict, folder: Path, k: int, n_drop: int | None, cache: Path) -> dict:
    """One universe backtest of the same settings, outside any sweep, its metrics and IC."""
    base = {key: value for key, value in raw.items() if key != "sweep"}
    cfg = load_config(base, [f"universe.data_dir={folder}", f"strategy.params.k={k}",
                             f"strategy.params.n_drop={'null' if n_drop is None else n_drop}",
                             f"indicator.cache_dir={cache}"])  # fmt: skip
    result = run_universe_backtest(cfg, write_reports=False)
    s = result.signal_metrics
    return result.metrics | {"ic": s["ic"]["mean"], "rank_ic": s["rank_ic"]["mean"], "ic_icir": s["ic"]["icir"],
                             "rank_ic_icir": s["rank_ic"]["icir"], "windows": result.forecast_stats.windows}  # fmt: skip


def _same(a: object, b: object) -> bool:
    missing = [x is None or (isinstance(x, float) and math.isnan(x)) for x in (a, b)]
    return all(missing) or (not any(missing) and a == pytest.approx(b, rel=1e-12, abs=1e-15))


def _check_against_solo(table: pd.DataFrame, raw: dict, folders: dict[str, Path], cache: Path) -> int:
    """Every row equals its one-by-one universe backtest; the number of windows those forecast."""
    windows = {}
    for row in table.to_dict("records"):
        n_drop = row["strategy.params.n_drop"]
        n_drop = None if n_drop is None or (isinstance(n_drop, float) and math.isnan(n_drop)) else int(n_drop)
        solo = _solo(raw, folders[row["asset"]], int(row["strategy.params.k"]), n_drop, cache)
        windows[row["asset"]] = solo["windows"]
        for metric in METRICS:
            assert _same(row[metric], solo[metric]), (row["asset"], row["strategy.params.k"], metric)
    return sum(windows.values())


def test_universe_sweep_block_is_validated(tmp_path, folders):
    raw = _raw(tmp_path, folders)
    raw["sweep"]["params"]["universe.data_dir"] = ["x"]
    with pytest.raises(ConfigError, match=r"'universe.data_dir' cannot be swept: list the universes"):
        load_config(raw)
    raw = _raw(tmp_path, folders, universes=[{"name": "x"}])
    with pytest.raises(
        ConfigError, match=r"sweep.universes\[0\] must set exactly one of assets, files, data_dir"
    ):
        load_config(raw)
    raw = _raw(tmp_path, folders)
    raw["sweep"]["params"] = {"strategy.params.kk": [1]}
    with pytest.raises(ConfigError, match=r"bad sweep key 'strategy.params.kk'"):
        load_config(raw)
    single = {k: v for k, v in _raw(tmp_path, folders).items() if k != "universe"}
    single |= {"data": {"dataset": "sp500"}, "strategy": {"name": "threshold", "params": {}}}
    single["sweep"] = {"params": {"strategy.params.enter": [0.1]}, "objective": "ic"}
    with pytest.raises(ConfigError, match=r"'sweep.objective: ic' is a cross-sectional metric"):
        load_config(single)


def test_universe_sweep_equals_one_by_one_backtests_in_process(tmp_path, folders):
    """Two universes x k x n_drop in this process: each row is its own universe backtest, forecasts once."""
    raw = _raw(tmp_path, folders)
    plan = plan_sweep(raw, out=tmp_path / "out", workers=2)
    assert len(plan.runs) == len(UNIVERSES) * len(K) * len(N_DROP)
    assert len({run.group for run in plan.runs}) == len(UNIVERSES)  # k and n_drop share the forecasts
    assert {name for shard in plan.shards for name in shard.names} == {"A", "B", "C", "D", "E"}
    result = run_sweep(raw, scheduler="sequential", out=tmp_path / "out")
    table = result.table
    assert len(table) == len(plan.runs) and set(table["asset"]) == set(UNIVERSES)
    assert table["rank_ic"].notna().all()
    ranked = table["rank_ic"].to_numpy()
    assert all(ranked[i] >= ranked[i + 1] for i in range(len(ranked) - 1))
    windows = _check_against_solo(table, raw, folders, tmp_path / "solo_cache")
    s = result.summary
    # every window once, before the backtests; C is in both universes, so its windows come from the cache once
    assert s["forecasts_computed"] + s["forecasts_reused"] == windows
    assert s["forecasts_computed"] == windows * 5 // 6
    assert s["backtest_forecasts_computed"] == 0 and not s["errors"]


def test_rerun_with_every_run_recorded_starts_no_cluster_and_loads_no_model(tmp_path, folders, monkeypatch):
    """#14: the second invocation finds every run and the top report on disk: no LocalCluster, no model load."""
    import kronos_model
    from kronos_strategies import runner
    from kronos_strategies.sweep import run as sweep_run
    from kronos_strategies.sweep import tasks

    raw = _raw(tmp_path, folders, top_n=1)
    first = run_sweep(raw, scheduler="sequential", out=tmp_path / "out")
    (top,) = first.summary["top"]
    assert (Path(top["dir"]) / "manifest.json").is_file()

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a sweep with nothing to do started a cluster or loaded a model")

    monkeypatch.setattr(sweep_run, "LocalCluster", refuse)
    monkeypatch.setattr(tasks, "worker_predictor", refuse)
    monkeypatch.setattr(runner, "load_model", refuse)
    monkeypatch.setattr(kronos_model.KronosPredictor, "from_pretrained", refuse)
    again = run_sweep(raw, out=tmp_path / "out")  # scheduler None: would start a LocalCluster
    assert again.summary["executed"] == 0 and again.summary["skipped"] == len(first.table)
    assert again.summary["cluster"] is False and again.summary["model_loads"] == {}
    assert again.summary["top"] == first.summary["top"]
    assert "nothing to do: every run is recorded; no cluster started, no model loaded" in str(again)
    pd.testing.assert_frame_equal(again.table, first.table)


def test_run_ids_change_with_the_model_files(tmp_path, folders):
    """Run ids hash the checkpoint files: changed weights re-run everything, an unchanged copy re-runs nothing."""
    model = tmp_path / "model"
    for part in ("tokenizer", "predictor"):
        (model / part).mkdir(parents=True)
        for name in ("config.json", "model.safetensors"):
            (model / part / name).write_bytes((TINY / part / name).read_bytes())
    raw = _raw(tmp_path, folders)
    before = [run.run_id for run in plan_sweep(raw, out=tmp_path / "out").runs]
    raw["model"] = {"predictor": str(model / "predictor"), "tokenizer": str(model / "tokenizer")}
    copied = [run.run_id for run in plan_sweep(raw, out=tmp_path / "out").runs]
    assert copied == before  # the same bytes elsewhere: the same runs
    weights = load_file(model / "predictor" / "model.safetensors")
    key = sorted(weights)[0]
    weights[key] = weights[key] + 1e-3
    save_file(weights, str(model / "predictor" / "model.safetensors"), metadata={"format": "pt"})
    changed = [run.run_id for run in plan_sweep(raw, out=tmp_path / "out").runs]
    assert not set(changed) & set(before) and len(set(changed)) == len(changed)


@pytest.mark.slow  # the in-process test above is the fast representative
def test_universe_sweep_on_a_local_cluster_equals_one_by_one_backtests(tmp_path, folders):
    distributed = pytest.importorskip("distributed")
    raw = _raw(tmp_path, folders)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        result = run_sweep(raw, scheduler=client, out=tmp_path / "out")
        assert set(result.summary["model_loads"].values()) == {1}
    assert result.summary["cluster"] is True and not result.summary["errors"]
    windows = _check_against_solo(result.table, raw, folders, tmp_path / "solo_cache")
    assert result.summary["forecasts_computed"] + result.summary["forecasts_reused"] == windows
    assert result.summary["backtest_forecasts_computed"] == 0
    assert np.isfinite(result.table["ic"].to_numpy()).all()


def test_example_universe_sweep_yaml_validates():
    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "backtests" / "universe_sweep.yaml")
    assert cfg.universe is not None and cfg.sweep.universes == ("data/us_daily",)
    assert list(cfg.sweep.params) == ["strategy.params.k", "strategy.params.n_drop"]
