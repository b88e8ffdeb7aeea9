"""End to end: YAML -> backtrader -> quantstats HTML, metrics, chart, manifest; CLI; fills at t+1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kronos_model.errors import CheckpointError
from kronos_strategies.cli import main
from kronos_strategies.errors import ConfigError
from kronos_strategies.runner import run_backtest

from .conftest import TINY, CountingPredictor, tiny_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One vectorised long/short threshold backtest on the tiny model (shared by the assertions below)."""
    tmp = tmp_path_factory.mktemp("bt")
    model = CountingPredictor()
    result = run_backtest(tiny_config(tmp), predictor=model)
    return result, model, tmp


def test_reports_are_written(tiny_run):
    result, _, tmp = tiny_run
    out = tmp / "run"
    assert {p.name for p in out.iterdir()} >= {"tearsheet.html", "metrics.json", "chart.png", "manifest.json",
                                               "signals.csv", "trades.csv"}  # fmt: skip
    html = (out / "tearsheet.html").read_text()
    assert "QuantStats" in html and "<h1>tiny: threshold on S&P 500" in html
    assert "Buy &amp; hold" in html  # the benchmark is our buy-and-hold Series, by name
    assert "Sharpe" in html and "Max Drawdown" in html
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("sharpe", "sortino", "cagr", "max_drawdown", "trades", "exposure", "turnover", "hit_rate"):
        assert key in metrics["strategy"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_fingerprint"] == result.model_fingerprint != "unknown"
    assert manifest["data_fingerprint"] == result.data_fingerprint
    assert manifest["seed"] == 0 and manifest["config"]["indicator"]["lookback"] == 32
    assert manifest["packages"]["backtrader"] and manifest["packages"]["quantstats"]


def test_trades_happen_and_metrics_match_the_equity(tiny_run, sp500_bars):
    result, _, _ = tiny_run
    m = result.metrics
    assert m["trades"] > 0 and len(result.fills) >= m["trades"]
    assert result.returns.index[0] == pd.Timestamp("2015-01-02")
    assert result.returns.index[-1] == pd.Timestamp("2015-05-29")
    assert m["total_return"] == pytest.approx(result.equity.iloc[-1] / 100_000 - 1, rel=1e-9)
    assert m["max_drawdown"] == pytest.approx((result.equity / result.equity.cummax() - 1).min(), rel=1e-9)
    r = result.returns
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252), rel=1e-6)
    closes = sp500_bars["close"].loc["2015-01-02":"2015-05-29"]
    assert result.benchmark_metrics["total_return"] == pytest.approx(
        closes.iloc[-1] / closes.iloc[0] - 1, rel=1e-9
    )
    assert 0 < m["exposure"] <= 1 and m["turnover"] > 0 and 0 <= m["hit_rate"] <= 1


def test_orders_fill_on_the_next_bar_at_the_earliest(tiny_run):
    result, _, _ = tiny_run
    index = result.signals.index
    for created, executed in zip(result.fills["created"], result.fills["executed"], strict=True):
        assert executed > created
        assert index.get_loc(executed) == index.get_loc(created) + 1  # market orders: the next open
    # nothing is traded before the first forecast of the trading period
    assert result.fills["created"].min() >= result.returns.index[0]


def test_rerun_with_other_strategy_params_uses_only_the_cache(tiny_run):
    result, model, tmp = tiny_run
    before = model.windows_computed
    assert before == result.forecast_stats.windows > 0
    cfg = tiny_config(tmp, strategy={"name": "threshold", "params": {"enter": 0.5}})
    again = run_backtest(cfg, predictor=model, write_reports=False)
    assert model.windows_computed == before, "changing the strategy must not recompute forecasts"
    assert again.forecast_stats.cache_hits == again.forecast_stats.windows
    assert again.signals.equals(result.signals)
    # a change of sampling invalidates
    cfg = tiny_config(tmp)
    cfg["indicator"] = {**cfg["indicator"], "T": 0.7}
    run_backtest(cfg, predictor=model, write_reports=False)
    assert model.windows_computed == before + result.forecast_stats.windows


def test_event_mode_gives_the_same_backtest(tiny_run, tiny_predictor, tmp_path):
    result, _, _ = tiny_run
    cfg = tiny_config(tmp_path, engine={"mode": "event", "progress": False})
    event = run_backtest(cfg, predictor=tiny_predictor, write_reports=False)
    assert event.signals.equals(result.signals)
    pd.testing.assert_series_equal(event.equity, result.equity)


def test_vol_target_and_band_indicator(tiny_predictor, tmp_path):
    cfg = tiny_config(
        tmp_path,
        indicator={"type": "kronos_strategies.builtin.band_signal:KronosBand", "lookback": 32, "pred_len": 4, "horizon": 4,
                   "sample_count": 4, "cache_dir": None},
        strategy={"name": "vol_target", "params": {"target_vol": 0.1, "enter": -1.0}},
    )  # fmt: skip
    result = run_backtest(cfg, predictor=tiny_predictor, write_reports=False)
    assert "width" in result.signals.columns
    assert result.metrics["orders_filled"] > 0
    # sized to the forecast spread: never above the cap, and varying with it
    assert result.exposure.max() <= 0.95 + 0.05 and result.exposure.std() > 0


def test_unknown_strategy_param_names_the_closest(tmp_path, tiny_predictor):
    cfg = tiny_config(tmp_path, strategy={"name": "threshold", "params": {"entr": 0.2}})
    with pytest.raises(
        ConfigError, match=r"unknown key 'strategy.params.entr'; did you mean 'strategy.params.enter'"
    ):
        run_backtest(cfg, predictor=tiny_predictor)
    cfg = tiny_config(tmp_path, strategy={"name": "no_such_strategy"})
    with pytest.raises(ConfigError, match="no_such_strategy"):
        run_backtest(cfg, predictor=tiny_predictor)


def _write_yaml(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, **sections)))
    return path


def test_cli_run_prints_a_summary_and_reuses_the_cache(tmp_path, capsys):
    path = _write_yaml(tmp_path)
    assert main(["run", str(path), "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert "Sharpe" in first and "Buy & hold" in first and "0 from cache" in first
    assert (tmp_path / "cli" / "tearsheet.html").is_file()
    assert main(["run", str(path), "--out", str(tmp_path / "cli2"), "--set", "strategy.params.enter=0.3",
                 "--set", "output.tearsheet=false"]) == 0  # fmt: skip
    second = capsys.readouterr().out
    assert ", 0 computed," in second


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    path = _write_yaml(tmp_path)
    assert main(["run", str(path), "--set", "indicator.lookbak=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and "unknown key 'indicator.lookbak'; did you mean 'indicator.lookback'" in err
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close\n2024-01-02,1,2,0.5,1\n2024-01-01,1,2,0.5,1\n")
    assert main(["run", str(path), "--data", str(bad)]) == 2
    assert "not sorted" in capsys.readouterr().err
    assert main(["run", str(path), "--data", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_forecast_writes_csv_and_fan_chart(tmp_path, sp500_bars, capsys):
    model_dir = tmp_path / "model"  # the layout from_pretrained reads: tokenizer/ + predictor/
    for part in ("tokenizer", "predictor"):
        shutil.copytree(TINY / part, model_dir / part)
    csv = tmp_path / "spx.csv"
    sp500_bars.iloc[-80:].to_csv(csv, index_label="timestamp")
    code = main(["forecast", str(csv), "--model", str(model_dir), "--lookback", "64", "--pred-len", "5",
                 "--sample-count", "8", "--out", str(tmp_path / "fc")])  # fmt: skip
    assert code == 0
    frame = pd.read_csv(tmp_path / "fc" / "forecast.csv", index_col="timestamp", parse_dates=True)
    assert len(frame) == 5 and frame.index[0] > sp500_bars.index[-1]
    assert {"close", "close_q0.1", "close_q0.9", "prob_up"} <= set(frame.columns)
    assert ((frame["prob_up"] >= 0) & (frame["prob_up"] <= 1)).all()
    assert (tmp_path / "fc" / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    assert "P(up)" in capsys.readouterr().out


def test_bundled_model_offline(tmp_path):
    """The shipped YAML with the bundled checkpoint, on a short slice (skipped until it is trained)."""
    from kronos_model import KronosPredictor

    try:
        KronosPredictor.from_pretrained()
    except CheckpointError as exc:
        pytest.skip(f"bundled model not installed yet: {exc}")
    result = run_backtest(
        ROOT / "backtests" / "sp500_threshold.yaml",
        overrides=["dates.start=2015-01-01", "dates.end=2015-02-28", "indicator.sample_count=4",
                   f"indicator.cache_dir={tmp_path / 'cache'}", "engine.progress=false"],
        out_dir=tmp_path / "out",
    )  # fmt: skip
    assert result.forecast_stats.computed == len(result.returns)
    assert "Buy &amp; hold S&amp;P 500" in (tmp_path / "out" / "tearsheet.html").read_text()
