"""The README's fine-tuning, backtest, walk-forward and sweep examples, executed as written in a scratch folder.

The code of each block is run unchanged; only the folder around it is prepared (the files its relative paths
name). Where a block as written takes minutes, the slow tier runs it. The fine-tuning block runs in the default
tier with its steps and window sizes capped (as written, 500 steps of both modules, it is minutes of CPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from .test_readme import python_blocks

ROOT = Path(__file__).resolve().parents[2]


def block(first_line_contains: str) -> str:
    (code,) = [code for _, code in python_blocks() if first_line_contains in code]
    return code


def run_block(code: str, names: dict | None = None) -> dict:
    """Execute README code in a fresh namespace (plus ``names``) and return the namespace."""
    scope = dict(names or {})
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    return scope


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """An empty working folder (runs/, .kronos_cache/ and the examples' outputs land here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def training_frames(sp500):
    """Two OHLCV frames with a DatetimeIndex, the ``[df_a, df_b]`` of the fine-tuning example."""
    from arch.data import nasdaq

    other = nasdaq.load().rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
    return {"df_a": sp500.loc["1999-01-01":"2014-12-31"], "df_b": other.loc["1999-01-01":"2014-12-31"]}


def _check_finetune_result(names: dict, folder: Path) -> None:
    from kronos_model import KronosPredictor

    assert (folder / "tokenizer").is_dir() and (folder / "predictor" / "training_record.json").is_file()
    losses = names["result"].predictor_result.record["step_losses"]
    assert losses and np.isfinite(losses).all()
    reloaded = KronosPredictor.from_pretrained(str(folder))  # "load with from_pretrained("my-kronos")"
    assert reloaded.fingerprint != names["predictor"].__class__.from_pretrained().fingerprint


def test_finetune_example_runs_with_few_steps(scratch, training_frames, monkeypatch):
    import kronos_model.training as training

    full = training.FinetuneConfig
    capped = {"max_steps": 1, "batch_size": 4, "val_fraction": 0.0, "lookback": 32, "horizon": 4}
    monkeypatch.setattr(training, "FinetuneConfig", lambda **kw: full(**{**kw, **capped}))
    names = run_block(block("result = finetune("), {k: v.iloc[-400:] for k, v in training_frames.items()})
    _check_finetune_result(names, scratch / "my-kronos")


@pytest.mark.slow
def test_backtest_example_runs_as_written(scratch, sp500):
    import backtrader as bt

    (scratch / "backtests").symlink_to(ROOT / "backtests")
    sp500.loc["2017-10-01":"2018-12-31"].to_csv(scratch / "bars.csv", index_label="timestamp")
    names = run_block(block("class MyStrategy(bt.Strategy)"))
    result = names["result"]
    assert np.isfinite(result.metrics["sharpe"]) and len(result.returns) == 1006  # the demo's bars
    assert issubclass(names["MyStrategy"], bt.Strategy)
    assert any((scratch / ".kronos_cache").rglob("*")), "the example's indicator wrote its forecast cache"


@pytest.mark.slow
def test_walkforward_example_runs(scratch):
    """As written but over the last two quarters of 2018 instead of 16 quarters (the same code path)."""
    import backtrader as bt

    code = block("run_walkforward(")
    assert '"2015-01-01", "2018-12-31"' in code
    names = run_block(code.replace('"2015-01-01", "2018-12-31"', '"2018-07-01", "2018-12-31"'))
    assert len(names["folds"]) == 2 and len(names["result"].folds) == 2
    assert issubclass(names["WalkForwardStrategy"], bt.Strategy)
    assert any((scratch / ".kronos_cache" / "walkforward").iterdir()), "fold checkpoints were written"


@pytest.mark.slow
def test_sweep_example_runs_on_a_loopback_cluster(scratch):
    """The notebook block with ``SCHEDULER`` pointed at a LocalCluster on 127.0.0.1 and a shorter sweep YAML."""
    from distributed import LocalCluster, default_client

    raw = yaml.safe_load((ROOT / "backtests" / "sp500_sweep.yaml").read_text())
    raw["dates"] = {"start": "2018-10-01", "end": "2018-12-31"}
    raw["indicator"]["sample_count"] = 4
    raw["sweep"]["params"] = {"strategy.params.enter": [0.0, 0.2], "indicator.horizon": [1, 5]}
    (scratch / "backtests").mkdir()
    (scratch / "backtests" / "sp500_sweep.yaml").write_text(yaml.safe_dump(raw))
    code = block("run_sweep(")
    line = 'SCHEDULER = "tcp://10.0.0.5:8786"'
    assert line in code
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        names = run_block(code.replace(line, f"SCHEDULER = {cluster.scheduler_address!r}"))
        default_client().close()  # the example leaves its Client open, as a notebook would
    assert len(names["result"].table) == 4 and (scratch / "sweeps" / "desk" / "results.csv").is_file()
    assert (scratch / "sweeps" / "sp500_sweep" / "results.csv").is_file()
