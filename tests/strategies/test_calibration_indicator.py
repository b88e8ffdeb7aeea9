"""KronosSignal with ``calibration``: through the real backtrader engine, modes agree, no future outcome is read,
cache keys do not change, and the band's realised coverage is counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_strategies.errors import ConfigError

from .conftest import FAST, run_signal

MODES = {"vectorised": dict(runonce=True, preload=True), "event-preload": dict(runonce=False, preload=True),
         "event-stream": dict(runonce=False, preload=False)}  # fmt: skip
CAL = {"method": "aci", "warmup": 3, "window": 10}  # short: calibration acts within a short test series


@pytest.fixture
def bars(sp500_bars: pd.DataFrame) -> pd.DataFrame:
    """90 daily bars: 32 of warm-up, 59 forecast bars."""
    return sp500_bars.loc["2015-01-01":].iloc[:90].copy()


def _coverage(lines: dict[str, np.ndarray], close: np.ndarray, horizon: int) -> tuple[int, int]:
    """(scored, hits) of the band lines against the close ``horizon`` bars later, computed here from the lines."""
    made = np.flatnonzero(~np.isnan(lines["upper"]))
    made = made[made + horizon < len(close)]
    later = close[made + horizon]
    return len(made), int(((lines["lower"][made] <= later) & (later <= lines["upper"][made])).sum())


def test_modes_agree_and_the_band_is_rescaled(tiny_predictor, bars):
    runs = {m: run_signal(bars, predictor=tiny_predictor, calibration=CAL, **kw, **FAST)
            for m, kw in MODES.items()}  # fmt: skip
    base, ind = runs["vectorised"]
    for lines, _ in runs.values():
        for name in base:
            assert np.array_equal(lines[name], base[name], equal_nan=True), name
    raw, raw_ind = run_signal(bars, predictor=tiny_predictor, **FAST)
    first = FAST["lookback"] - 1
    early = slice(first, first + FAST["horizon"] + CAL["warmup"] - 1)  # warm-up: no score known yet
    assert np.array_equal(base["upper"][early], raw["upper"][early])
    assert not np.allclose(base["upper"][first + 10 :], raw["upper"][first + 10 :])
    # the counts the report uses equal what the lines and closes give
    close = bars["close"].to_numpy()
    scored, hits = _coverage(base, close, FAST["horizon"])
    assert (ind.stats.band_scored, ind.stats.band_hits) == (scored, hits)
    raw_scored, raw_hits = _coverage(raw, close, FAST["horizon"])
    assert (ind.stats.band_scored, ind.stats.raw_band_hits) == (raw_scored, raw_hits)
    assert raw_ind.stats.band_coverage()["coverage"] == raw_ind.stats.band_coverage()["raw_coverage"]
    assert ind.latest_forecast is not None and ind.calibrator is not None


@pytest.mark.parametrize("mode", MODES)
def test_calibrated_lines_ignore_every_later_outcome(tiny_predictor, bars, mode):
    """Change every bar after t: every line at <= t stays bit-identical with calibration on."""
    t = 60
    changed = bars.copy()
    changed.iloc[t + 1 :, :4] *= 1.37
    before, _ = run_signal(bars, predictor=tiny_predictor, calibration=CAL, **MODES[mode], **FAST)
    after, _ = run_signal(changed, predictor=tiny_predictor, calibration=CAL, **MODES[mode], **FAST)
    for name in before:
        assert np.array_equal(before[name][: t + 1], after[name][: t + 1], equal_nan=True), name
    assert not np.array_equal(before["upper"][t + 1 :], after["upper"][t + 1 :])


def test_calibration_keeps_cache_keys(tmp_path, bars, counting_predictor):
    cache = tmp_path / "cache"
    _, raw = run_signal(bars, predictor=counting_predictor, cache=cache, **FAST)
    computed = counting_predictor.windows_computed
    _, cal = run_signal(bars, predictor=counting_predictor, cache=cache, calibration=CAL, **FAST)
    assert cal.spec == raw.spec  # the spec is the whole cache key besides the model and the window
    assert (
        counting_predictor.windows_computed == computed
    )  # every calibrated forecast came from the raw cache
    assert cal.stats.cache_hits == cal.stats.windows


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"target": 2.0}, "KronosSignal: 'calibration.target' must be a coverage in (0, 1)"),
        ({"methd": "aci"}, "KronosSignal: unknown key 'calibration.methd'"),
        ("on", "KronosSignal: 'calibration' must be a mapping"),
    ],
)
def test_bad_calibration_param(tiny_predictor, bars, value, message):
    with pytest.raises(ConfigError) as err:
        run_signal(bars, predictor=tiny_predictor, calibration=value, **FAST)
    assert message in str(err.value)
