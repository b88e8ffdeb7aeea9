"""``indicator.calibration`` in the YAML: validated with one-line errors, carried to KronosSignal, and the run's
realised band coverage in metrics.json and the printed summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kronos_model.calibration import CalibrationSpec
from kronos_strategies.cli import main
from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.runner import indicator_params, run_backtest

from .conftest import tiny_config

CAL = {"method": "aci", "target": 0.8, "warmup": 5, "window": 50}


def test_calibration_key_is_loaded_and_passed_to_the_indicator():
    cfg = load_config({"data": {"dataset": "sp500"}, "indicator": {"calibration": CAL}})
    assert cfg.indicator.calibration == CalibrationSpec(**CAL)
    assert indicator_params(cfg, predictor=None)["calibration"] == CalibrationSpec(**CAL)
    assert load_config({"data": {"dataset": "sp500"}}).indicator.calibration is None  # off by default
    over = load_config({"data": {"dataset": "sp500"}}, ["indicator.calibration.gamma=0.01"])
    assert over.indicator.calibration == CalibrationSpec(gamma=0.01)
    assert cfg.to_dict()["indicator"]["calibration"]["target"] == 0.8  # the manifest records it


@pytest.mark.parametrize(
    ("calibration", "message"),
    [
        ({"target": 1.5}, "'indicator.calibration.target' must be a coverage in (0, 1), e.g. 0.8, got 1.5"),
        (
            {"targte": 0.8},
            "unknown key 'indicator.calibration.targte'; did you mean 'indicator.calibration.target'",
        ),
        ({"method": "cqr"}, "'indicator.calibration.method' must be one of ['aci'], got 'cqr'"),
        ({"window": "long"}, "'indicator.calibration.window' must be of type int, got 'long'"),
        ({"warmup": 0}, "'indicator.calibration.warmup' must be in [1, window=500], got 0"),
        (True, "'indicator.calibration' must be a mapping"),
    ],
)
def test_bad_calibration_is_one_line_naming_the_key(calibration, message):
    with pytest.raises(ConfigError) as err:
        load_config({"data": {"dataset": "sp500"}, "indicator": {"calibration": calibration}})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_bad_calibration_exits_2(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path)))
    assert main(["run", str(path), "--set", "indicator.calibration.target=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'indicator.calibration.target' must be a coverage in (0, 1)" in err


def test_metrics_json_reports_the_bands_realised_coverage(tmp_path, tiny_predictor, sp500_bars):
    ind = {**tiny_config(tmp_path)["indicator"], "calibration": CAL}
    cfg = tiny_config(tmp_path, indicator=ind, output={"dir": str(tmp_path / "run"), "tearsheet": False,
                                                        "chart": False})  # fmt: skip
    result = run_backtest(cfg, predictor=tiny_predictor)
    band = json.loads((tmp_path / "run" / "metrics.json").read_text())["forecasts"]["band"]
    # recount from the written signals and the closes: the band made at bar t describes bar t + horizon
    sig = pd.read_csv(tmp_path / "run" / "signals.csv", index_col=0)
    close = sp500_bars["close"].reindex(pd.to_datetime(sig.index)).to_numpy()
    h = ind["horizon"]
    made = np.flatnonzero(sig["upper"].notna().to_numpy())
    made = made[made + h < len(close)]
    later = close[made + h]
    hits = int(((sig["lower"].to_numpy()[made] <= later) & (later <= sig["upper"].to_numpy()[made])).sum())
    assert band["scored"] == len(made) > 0 and band["coverage"] == pytest.approx(hits / len(made))
    assert band["nominal"] == 0.8 and band["quantiles"] == [0.1, 0.9] and band["horizon"] == h
    assert band["calibration"]["method"] == "aci" and 0 <= band["raw_coverage"] <= 1
    assert result.forecast_stats.band_scored == len(made)


@pytest.mark.slow
def test_cli_run_with_calibration_prints_the_band_coverage(tmp_path, capsys):
    path = tmp_path / "cal.yaml"
    ind = {**tiny_config(tmp_path)["indicator"], "calibration": CAL}
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, indicator=ind)))
    assert main(["run", str(path), "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "band: q0.1-q0.9 4 bars ahead covered" in out and "raw model band" in out
    metrics = json.loads(Path(tmp_path / "cli" / "metrics.json").read_text())
    assert metrics["forecasts"]["band"]["calibration"]["target"] == 0.8
    assert (tmp_path / "cli" / "tearsheet.html").is_file()
