"""Rolling-origin evaluation: windows, no lookahead, the batched Kronos path, report files and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos_model.errors import DataError, InsufficientHistoryError, MissingColumnError, SamplingError
from kronos_model.evaluation import evaluate, origin_positions
from kronos_model.metrics import METRIC_NAMES

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PNG_MAGIC = b"\x89PNG"


def _bars(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    idx = pd.bdate_range("2020-01-01", periods=n, name="timestamp")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": rng.uniform(1e3, 2e3, n)},
        index=idx,
    )


class RecordingPredictor:
    """Delegates to a real KronosPredictor and keeps the windows it was asked to forecast."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[list[pd.DataFrame]] = []

    def forecast_batch(self, df_list, pred_len, **kwargs):
        self.calls.append([d.copy() for d in df_list])
        return self.inner.forecast_batch(df_list, pred_len, **kwargs)


@pytest.fixture(scope="module")
def tiny_predictor():
    from kronos_model import Kronos, KronosPredictor, KronosTokenizer

    return KronosPredictor(
        Kronos.from_pretrained(str(TINY / "predictor")),
        KronosTokenizer.from_pretrained(str(TINY / "tokenizer")),
        device="cpu",
        max_context=512,
    )


def test_origin_positions_by_hand():
    stamps = pd.bdate_range("2021-01-01", periods=20)
    # lookback 5, horizon 3; targets within stamps[8]..stamps[15] -> p in 8..13, every 2nd
    pos = origin_positions(stamps, 5, 3, start=stamps[8], end=stamps[15], stride=2)
    assert pos.tolist() == [8, 10, 12]
    assert origin_positions(stamps, 5, 3).tolist() == list(range(5, 18))
    with pytest.raises(InsufficientHistoryError, match="no forecast origin"):
        origin_positions(stamps, 18, 3)
    with pytest.raises(DataError, match="lookback"):
        origin_positions(stamps, 1, 3)


def test_baselines_only_windows_and_scores():
    df = _bars()
    res = evaluate(df, None, lookback=40, horizon=4, sample_count=16, stride=7, start="2020-03-01")
    assert res.methods == ["random_walk", "drift", "bootstrap", "garch"]
    assert list(res.scores.columns) == list(METRIC_NAMES)
    assert res.scores.shape == (4 * 4, len(METRIC_NAMES))
    close = df["close"].to_numpy()
    for i, p in enumerate(res.positions):
        assert res.origins[i] == df.index[p] and res.origins[i] >= pd.Timestamp("2020-03-01")
        assert np.array_equal(res.realised[i], close[p : p + 4])
        assert res.last_close[i] == close[p - 1]
    assert np.all(res.paths["random_walk"] == res.last_close[:, None, None])
    assert np.allclose(res.metric("hit_rate")["random_walk"], 0.5)
    assert np.isfinite(res.metric("crps").to_numpy()).all()


@pytest.mark.slow  # GARCH refits on every window of two spans; no-lookahead of the same windows stays fast below
def test_a_window_does_not_depend_on_the_evaluated_span():
    df = _bars(100)
    wide = evaluate(df, None, lookback=30, horizon=3, sample_count=8, seed=5)
    narrow = evaluate(df, None, lookback=30, horizon=3, sample_count=8, seed=5, start=df.index[60])
    shared = np.searchsorted(wide.positions, narrow.positions)
    assert np.array_equal(wide.positions[shared], narrow.positions)
    for method in wide.methods:
        assert np.array_equal(wide.paths[method][shared], narrow.paths[method])


def test_no_window_sees_its_origin_or_later(tiny_predictor):
    df = _bars(90)
    kwargs = {"lookback": 30, "horizon": 3, "sample_count": 4, "stride": 5, "seed": 11, "batch_size": 3}
    base = evaluate(df, tiny_predictor, **kwargs)
    k = len(base.positions) // 2
    changed = df.copy()
    changed.iloc[base.positions[k] :, :4] *= 1.5  # every bar from origin k on
    other = evaluate(changed, tiny_predictor, **kwargs)
    assert not np.array_equal(base.realised[k], other.realised[k])
    for method in base.methods:
        assert np.array_equal(base.paths[method][: k + 1], other.paths[method][: k + 1]), method
        assert not np.array_equal(base.paths[method][k + 1 :], other.paths[method][k + 1 :]), method


def test_prepared_series_path_equals_dataframe_windows(tiny_predictor):
    """A real predictor gets windows cut from one prepared series; a forecast_batch-only one gets frames."""
    df = _bars(90)
    kwargs = dict(lookback=30, horizon=3, sample_count=4, stride=3, baselines=("random_walk",))
    fast = evaluate(df, tiny_predictor, **kwargs)
    frames = evaluate(df, RecordingPredictor(tiny_predictor), **kwargs)
    np.testing.assert_array_equal(fast.paths["kronos"], frames.paths["kronos"])
    pd.testing.assert_frame_equal(fast.scores, frames.scores)


def test_kronos_end_to_end_batched(tiny_predictor, tmp_path):
    df = _bars(80)
    rec = RecordingPredictor(tiny_predictor)
    res = evaluate(
        df, rec, lookback=32, horizon=3, sample_count=4, stride=4, baselines=("random_walk", "garch")
    )
    assert len(rec.calls) == 1 and len(rec.calls[0]) == len(res.positions)  # one batched call
    for frame, p in zip(rec.calls[0], res.positions):
        assert len(frame) == 32 and frame.index[-1] == df.index[p - 1]
    assert res.methods == ["kronos", "kronos_calibrated", "random_walk", "garch"]
    assert res.paths["kronos"].shape == (len(res.positions), 4, 3)
    assert np.isfinite(res.metric("crps")["kronos"]).all()
    files = res.save(tmp_path)
    assert {p.name for p in files.values()} == {
        "report.md", "report.json", "fan.png", "metrics.png", "calibration.png"
    }  # fmt: skip
    for key in ("fan", "metrics", "calibration"):
        assert files[key].read_bytes()[:4] == PNG_MAGIC
    report = json.loads(files["json"].read_text())
    assert report["scores"]["kronos"]["crps"] == pytest.approx(res.metric("crps")["kronos"].tolist())
    text = files["markdown"].read_text()
    assert "## Horizon 3" in text and "| kronos |" in text and "coverage" in text


def test_report_json_is_strict_and_markdown_marks_best():
    res = evaluate(
        _bars(), None, lookback=40, horizon=2, sample_count=8, stride=9, baselines=("random_walk", "drift")
    )
    data = json.loads(res.to_json())  # the random walk's undefined IC becomes null, not NaN
    assert data["scores"]["random_walk"]["ic"] == [None, None]
    assert data["origins"]["count"] == len(res.origins)
    best = res.at(1)["crps"].idxmin()
    row = next(line for line in res.to_markdown().splitlines() if line.startswith(f"| {best} |"))
    assert "**" in row


def test_evaluate_bad_input_errors():
    df = _bars(60)
    with pytest.raises(DataError, match="unknown baseline"):
        evaluate(df, None, lookback=20, horizon=2, baselines=("oracle",))
    with pytest.raises(SamplingError, match="sample_count"):
        evaluate(df, None, lookback=20, horizon=2, sample_count=0)
    with pytest.raises(InsufficientHistoryError, match="widen the range"):
        evaluate(df, None, lookback=20, horizon=2, start="2030-01-01")
    with pytest.raises(MissingColumnError, match="close"):
        evaluate(df.drop(columns=["close"]), None, lookback=20, horizon=2)
    with pytest.raises(DataError, match="nothing to evaluate"):
        evaluate(df, None, lookback=20, horizon=2, baselines=())


def test_cli_evaluate_baselines(tmp_path, capsys):
    from kronos_strategies.cli import main

    csv = tmp_path / "bars.csv"
    _bars(100).to_csv(csv)
    out = tmp_path / "out"
    args = ["evaluate", "--csv", str(csv), "--model", "none", "--lookback", "40", "--pred-len", "3"]
    assert main([*args, "--sample-count", "8", "--stride", "10", "--out", str(out), "--no-progress"]) == 0
    assert (out / "report.md").is_file() and (out / "metrics.png").read_bytes()[:4] == PNG_MAGIC
    assert main([*args, "--start", "2031-01-01", "--out", str(out)]) == 2
    assert "no forecast origin" in capsys.readouterr().err


@pytest.mark.slow  # the CLI (baselines) and the model path (test_kronos_end_to_end_batched) stay fast
def test_cli_evaluate_with_model_directory(tmp_path, capsys):
    from kronos_strategies.cli import main

    csv = tmp_path / "bars.csv"
    _bars(70).to_csv(csv)
    args = ["evaluate", "--csv", str(csv), "--model", str(TINY), "--lookback", "32", "--pred-len", "2"]
    assert (
        main(
            [
                *args,
                "--sample-count",
                "2",
                "--stride",
                "12",
                "--baselines",
                "drift",
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "| kronos |" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "report.json").read_text())["settings"]["model_fingerprint"]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data (real OHLCV samples) is not present")
def test_real_daily_series_baselines():
    from kronos_strategies.feeds import read_ohlcv

    df = read_ohlcv(SHARED / "spy_1d.csv")
    res = evaluate(df, None, lookback=128, horizon=5, sample_count=64, start="2016-01-01", end="2016-12-31",
                   stride=10, baselines=("random_walk", "bootstrap"))  # fmt: skip
    crps = res.metric("crps")
    # a calibrated spread beats a point mass on CRPS for real daily returns
    assert (crps["bootstrap"] < crps["random_walk"]).all()
    assert (res.metric("coverage")["bootstrap"] > 0.5).all()
