"""``evaluate`` scores the calibrated forecast next to the raw one: rows, coverage by horizon, PIT, plots, JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kronos_model.errors import ConfigError
from kronos_model.evaluation import evaluate
from kronos_model.forecast import Forecast

SIGMA = 0.01


def _bars(n: int, seed: int = 0) -> pd.DataFrame:
    """OHLCV bars whose closes follow iid Gaussian log returns of std SIGMA."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, SIGMA, n)))
    idx = pd.bdate_range("2010-01-01", periods=n, name="timestamp")
    return pd.DataFrame(
        {"open": close, "high": close * 1.002, "low": close * 0.998, "close": close, "volume": 1e3}, index=idx
    )


class NarrowForecaster:
    """A forecaster with half the true volatility: Gaussian paths from the window's last close (its band is too
    narrow by construction, so the raw 80 % band covers about half the outcomes)."""

    def forecast_batch(self, df_list, pred_len, *, sample_count, seed=0, **_):
        out = []
        for i, frame in enumerate(df_list):
            rng = np.random.default_rng((seed, i, len(frame), int(frame.index[-1].value)))
            last = float(frame["close"].iloc[-1])
            close = last * np.exp(np.cumsum(rng.normal(0, SIGMA / 2, (sample_count, pred_len)), axis=1))
            samples = np.repeat(close[:, :, None], 6, axis=2).astype(np.float32)
            future = pd.bdate_range(frame.index[-1] + pd.offsets.BDay(), periods=pred_len)
            out.append(Forecast(samples, future, last, frame.index[-1]))
        return out


@pytest.fixture(scope="module")
def result():
    return evaluate(
        _bars(900), NarrowForecaster(), lookback=20, horizon=3, sample_count=32, stride=1,
        baselines=("bootstrap",), name="narrow",
    )  # fmt: skip


def test_report_has_raw_and_calibrated_rows_next_to_bootstrap(result, tmp_path) -> None:
    assert result.methods == ["kronos", "kronos_calibrated", "bootstrap"]
    table = result.calibration_table()
    assert list(table.index) == ["raw", "calibrated", "bootstrap"]
    assert {"coverage", "width", "crps", "pit_gap"} <= set(table.columns)
    assert table.loc["raw", "coverage"] < 0.55  # half the volatility: about 0.47
    assert table.loc["calibrated", "coverage"] == pytest.approx(0.8, abs=0.04)
    assert table.loc["calibrated", "crps"] < table.loc["raw", "crps"]
    assert table.loc["calibrated", "pit_gap"] < table.loc["raw", "pit_gap"]  # PIT closer to uniform
    by_h = result.coverage_by_horizon()
    assert list(by_h.index) == ["raw", "calibrated", "bootstrap"] and list(by_h.columns) == [1, 2, 3]

    files = result.save(tmp_path)
    assert files["calibration"].read_bytes()[:4] == b"\x89PNG"
    text = files["markdown"].read_text()
    assert "## Calibration: raw vs calibrated (aci, target 0.8)" in text
    assert "| raw |" in text and "| calibrated |" in text and "| bootstrap |" in text
    assert "80% interval coverage calibrated:" in text
    report = json.loads(files["json"].read_text())
    cal = report["calibration"]
    assert set(cal["rows"]) == {"raw", "calibrated", "bootstrap"}
    assert cal["rows"]["calibrated"]["coverage"] == pytest.approx(table.loc["calibrated", "coverage"])
    assert len(cal["coverage_by_horizon"]["calibrated"]) == 3
    assert len(cal["pit_histogram"]["raw"]) == 10 and sum(cal["pit_histogram"]["raw"]) == pytest.approx(1.0)
    # warm-up: 20 scores per horizon; step h of the forecast at origin n is scored h bars later
    assert cal["spec"]["target"] == 0.8 and cal["raw_origins"] == [20, 21, 22]
    assert 1.6 < cal["mean_scale"][0] < 2.6  # about twice the raw band


def test_calibration_off_and_bad_settings() -> None:
    res = evaluate(_bars(80), NarrowForecaster(), lookback=20, horizon=2, sample_count=8, stride=3,
                   baselines=(), calibration=False)  # fmt: skip
    assert res.methods == ["kronos"] and res.to_dict()["calibration"] is None
    with pytest.raises(ConfigError, match="'calibration.gamma' must be in"):
        evaluate(_bars(80), NarrowForecaster(), lookback=20, horizon=2, sample_count=8, baselines=(),
                 calibration={"gamma": 2.0})  # fmt: skip


def test_cli_evaluate_scores_calibrated_rows_and_names_bad_flags(tmp_path, capsys) -> None:
    from pathlib import Path

    from kronos_strategies.cli import main

    tiny = Path(__file__).resolve().parents[1] / "fixtures" / "tiny"
    csv = tmp_path / "bars.csv"
    _bars(90).to_csv(csv)
    args = ["evaluate", "--csv", str(csv), "--model", str(tiny), "--lookback", "32", "--pred-len", "2",
            "--sample-count", "4", "--stride", "2", "--baselines", "bootstrap", "--no-progress",
            "--calibration-warmup", "5"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "on")]) == 0
    out = capsys.readouterr().out
    assert "## Calibration: raw vs calibrated" in out and "| calibrated |" in out
    report = json.loads((tmp_path / "on" / "report.json").read_text())
    assert report["calibration"]["spec"]["warmup"] == 5 and "kronos_calibrated" in report["scores"]
    assert main([*args, "--no-calibration", "--out", str(tmp_path / "off")]) == 0
    assert json.loads((tmp_path / "off" / "report.json").read_text())["calibration"] is None
    capsys.readouterr()
    assert main([*args, "--calibration-window", "5", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'--calibration-window' must be >= 10 past scores, got 5" in err
