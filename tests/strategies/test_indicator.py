"""KronosSignal through the real backtrader engine: modes agree, no lookahead, hooks, cache reuse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_strategies.builtin.band_signal import KronosBand
from kronos_strategies.errors import ConfigError
from kronos_strategies.indicator import KronosSignal

from .conftest import FAST, CountingPredictor, run_signal

MODES = {"vectorised": dict(runonce=True, preload=True), "event-preload": dict(runonce=False, preload=True),
         "event-stream": dict(runonce=False, preload=False)}  # fmt: skip


def _first_value(line: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isnan(line))[0])


def test_every_mode_gives_identical_lines(tiny_predictor, short_bars):
    runs = [run_signal(short_bars, predictor=tiny_predictor, **mode, **FAST) for mode in MODES.values()]
    base, ind = runs[0]
    assert _first_value(base["signal"]) == FAST["lookback"] - 1  # minimum period = lookback
    assert ind.stats.windows == len(short_bars) - FAST["lookback"] + 1
    for lines, _ in runs[1:]:
        for name in base:
            assert np.array_equal(lines[name], base[name], equal_nan=True), name
    assert np.isfinite(base["signal"][FAST["lookback"] - 1 :]).all()
    assert ((base["prob_up"][31:] >= 0) & (base["prob_up"][31:] <= 1)).all()
    assert (base["lower"][31:] <= base["upper"][31:]).all()
    np.testing.assert_allclose(base["signal"][31:], 2 * base["prob_up"][31:] - 1)


@pytest.mark.parametrize("mode", MODES)
def test_no_lookahead(tiny_predictor, short_bars, mode):
    """Change prices and volumes of every bar after t: all values at <= t stay bit-identical."""
    t = 45
    changed = short_bars.copy()
    changed.iloc[t + 1 :, :4] *= 1.37  # open, high, low, close
    changed.iloc[t + 1 :, 4:] *= 5.0  # volume, amount
    before, _ = run_signal(short_bars, predictor=tiny_predictor, **MODES[mode], **FAST)
    after, _ = run_signal(changed, predictor=tiny_predictor, **MODES[mode], **FAST)
    for name in before:
        assert np.array_equal(before[name][: t + 1], after[name][: t + 1], equal_nan=True), name
    # the change does reach the model afterwards, so the test could fail
    assert not np.array_equal(before["upper"][t + 1 :], after["upper"][t + 1 :])


def test_reforecast_every_n_bars_holds_values(tiny_predictor, short_bars):
    for runonce in (True, False):
        lines, ind = run_signal(short_bars, predictor=tiny_predictor, runonce=runonce, every=3, **FAST)
        n_windows = len(range(FAST["lookback"] - 1, len(short_bars), 3))
        assert ind.stats.windows == n_windows
        upper = lines["upper"][FAST["lookback"] - 1 :]
        blocks = [upper[i : i + 3] for i in range(0, len(upper), 3)]
        assert all((b == b[0]).all() for b in blocks)
        assert len({b[0] for b in blocks}) > 1


class ShortHorizonSignal(KronosSignal):
    """A user's signal: the expected return one bar ahead, scaled."""

    def compute_signal(self, forecast):
        return 100.0 * forecast.expected_return(1)


def test_signal_is_a_line_and_the_old_hook_name_still_works_with_a_warning(tiny_predictor, short_bars):
    with pytest.warns(DeprecationWarning, match=r"OldStyle.signal\(forecast\) is now compute_signal"):

        class OldStyle(KronosSignal):
            def signal(self, forecast):
                return 100.0 * forecast.expected_return(1)

    assert "signal" not in OldStyle.__dict__ and "compute_signal" in OldStyle.__dict__
    params = {**FAST, "horizon": 1}
    old, ind = run_signal(short_bars, predictor=tiny_predictor, indicator=OldStyle, **params)
    new, _ = run_signal(short_bars, predictor=tiny_predictor, indicator=ShortHorizonSignal, **params)
    assert np.array_equal(old["signal"], new["signal"], equal_nan=True)
    assert ind.signal[0] == ind.lines.signal[0]  # the line, not a method
    assert "Kronos" not in KronosSignal.alias  # would shadow the model class in backtrader's namespace


@pytest.mark.parametrize("runonce", [True, False])
def test_subclassed_signal_hook(tiny_predictor, short_bars, runonce):
    params = {**FAST, "horizon": 1}
    mine, _ = run_signal(
        short_bars, predictor=tiny_predictor, indicator=ShortHorizonSignal, runonce=runonce, **params
    )
    base, _ = run_signal(short_bars, predictor=tiny_predictor, runonce=runonce, **params)
    np.testing.assert_allclose(mine["signal"][31:], 100.0 * base["expected_return"][31:], rtol=1e-6)
    assert np.array_equal(mine["upper"], base["upper"], equal_nan=True)


def test_band_example_adds_a_line_in_both_modes(tiny_predictor, short_bars, sp500_bars):
    runs = [run_signal(short_bars, predictor=tiny_predictor, indicator=KronosBand, runonce=r, **FAST)[0]
            for r in (True, False)]  # fmt: skip
    lines = runs[0]
    assert np.array_equal(runs[0]["width"], runs[1]["width"], equal_nan=True)
    close = short_bars["close"].to_numpy()
    live = slice(FAST["lookback"] - 1, None)
    # the band in return terms is the price band over the last close (float32 quantiles)
    np.testing.assert_allclose(lines["width"][live], (lines["upper"] - lines["lower"])[live] / close[live], rtol=1e-4,
                               atol=1e-7)  # fmt: skip
    ok = lines["width"][live] > 0
    np.testing.assert_allclose(lines["signal"][live][ok], (lines["expected_return"] / lines["width"])[live][ok],
                               rtol=1e-6)  # fmt: skip


def test_cache_reuse_and_invalidation(tmp_path, short_bars):
    model = CountingPredictor()
    params = {**FAST, "cache": tmp_path}
    first, ind = run_signal(short_bars, predictor=model, **params)
    n = ind.stats.windows
    assert model.windows_computed == n and ind.stats.cache_hits == 0

    again, ind = run_signal(short_bars, predictor=model, runonce=False, **params)  # event mode reads it too
    assert model.windows_computed == n, "a cached re-run must not call the model"
    assert ind.stats.cache_hits == n
    for name in first:
        assert np.array_equal(first[name], again[name], equal_nan=True)

    model.windows_computed = 0
    run_signal(short_bars, predictor=model, **{**params, "sample_count": 5})
    assert model.windows_computed == n  # sampling changed
    model.windows_computed = 0
    run_signal(short_bars, predictor=model, **{**params, "seed": 1})
    assert model.windows_computed == n  # seed changed

    edited = short_bars.copy()
    edited.iloc[-1, edited.columns.get_loc("volume")] *= 2  # only the last window sees the last bar
    model.windows_computed = 0
    run_signal(edited, predictor=model, **params)
    assert model.windows_computed == 1

    other_model = CountingPredictor(max_context=256)  # another fingerprint
    assert other_model.fingerprint != model.fingerprint
    run_signal(short_bars, predictor=other_model, **params)
    assert other_model.windows_computed == n


def test_unseeded_runs_are_not_cached(tmp_path, short_bars, tiny_predictor):
    _, ind = run_signal(
        short_bars.iloc[:40], predictor=tiny_predictor, **{**FAST, "seed": None, "cache": tmp_path}
    )
    assert ind.cache is None and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("params", "match"),
    [({"horizon": 9}, r"horizon must be in \[1, pred_len=4\]"), ({"every": 0}, "every must be >= 1"),
     ({"quantiles": (0.9, 0.1)}, "quantiles must be"), ({"lookback": 1024}, "exceeds the model's context of 512"),
     ({"predictor": 3.5}, "predictor must be a KronosPredictor")],
)  # fmt: skip
def test_bad_params_raise_config_error(tiny_predictor, short_bars, params, match):
    with pytest.raises(ConfigError, match=match):
        run_signal(short_bars, **{**FAST, "predictor": tiny_predictor, **params})


class RecordingPredictor(CountingPredictor):
    """The tiny predictor, keeping the timestamps of every window it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def forecast_batch(self, df_list, pred_len, **kwargs):  # noqa: ANN001, ANN003
        self.seen.extend(df.index for df in df_list)
        return super().forecast_batch(df_list, pred_len, **kwargs)

    def forecast_series(self, series, ends, pred_len, *, lookback, **kwargs):  # noqa: ANN001, ANN003
        self.seen.extend(series.times[max(0, e - lookback) : e] for e in ends)
        return super().forecast_series(series, ends, pred_len, lookback=lookback, **kwargs)


@pytest.mark.parametrize("runonce", [True, False])
def test_model_gets_the_feeds_real_timestamps(short_bars, runonce):
    bars = short_bars.copy()
    bars.index = pd.date_range("2024-06-18 09:35", periods=len(bars), freq="5min", tz="Asia/Shanghai")
    model = RecordingPredictor()
    run_signal(bars, predictor=model, runonce=runonce, **FAST)
    lb = FAST["lookback"]
    assert len(model.seen) == len(bars) - lb + 1
    for k, stamps in enumerate(model.seen):
        assert stamps.equals(bars.index[k : k + lb])  # exact, local time zone kept


class FramesOnlyPredictor:
    """A predictor offering only ``forecast_batch`` on DataFrames (as wrappers do): the indicator's fallback."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner, self.max_context, self.fingerprint = inner, inner.max_context, inner.fingerprint

    def forecast_batch(self, df_list, pred_len, **kwargs):  # noqa: ANN001, ANN003
        return self.inner.forecast_batch(df_list, pred_len, **kwargs)


@pytest.mark.parametrize("runonce", [True, False])
def test_prepared_series_path_equals_dataframe_path(tiny_predictor, short_bars, runonce):
    """Windows sliced from the prepared series give the lines DataFrame windows give, bit for bit."""
    fast, _ = run_signal(short_bars, predictor=tiny_predictor, runonce=runonce, **FAST)
    slow, _ = run_signal(short_bars, predictor=FramesOnlyPredictor(tiny_predictor), runonce=runonce, **FAST)
    for name in fast:
        assert np.array_equal(fast[name], slow[name], equal_nan=True), name
