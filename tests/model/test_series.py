"""Prepared series: windows cut as array slices equal windows prepared from their own DataFrames, exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_model.data import (
    calendar_features,
    frame_timestamps,
    infer_future_timestamps,
    prepare_ohlcv,
    window_stats,
)
from kronos_model.errors import DataError, TimestampError
from kronos_model.series import PreparedSeries

CLIP = 5.0


def _bars(times: pd.DatetimeIndex, columns: tuple[str, ...], seed: int = 0) -> pd.DataFrame:
    """Random-walk OHLCV bars with the given optional columns (volume, amount)."""
    rng = np.random.default_rng(seed)
    n = len(times)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.003, n))
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
        },
        index=times,
    )
    if "volume" in columns:
        frame["volume"] = rng.uniform(10, 1000, n)
    if "amount" in columns:
        frame["amount"] = rng.uniform(1e3, 1e5, n)
    return frame


def _old_window(frame: pd.DataFrame, pred_len: int):
    """The per-window preparation the predictor did before prepared series (written out from data.py)."""
    prepared = prepare_ohlcv(frame)
    stamps = frame_timestamps(frame)
    future = infer_future_timestamps(stamps, pred_len)
    raw = prepared.to_numpy(dtype=np.float32)
    mean, std = window_stats(raw)
    x = np.clip((raw - mean) / (std + 1e-5), -CLIP, CLIP)
    feats = np.concatenate([calendar_features(stamps), calendar_features(future)])
    return x, mean, std, feats, future, float(prepared["close"].iloc[-1]), stamps[-1]


def _gappy_minutes() -> pd.DatetimeIndex:
    """Minute bars with an hour missing in the middle: not evenly spaced, inferred per window."""
    times = pd.date_range("2024-03-01 09:00", periods=400, freq="min")
    return times.delete(range(150, 210))


def _stock_days(tz: str | None = None, hour: int = 0) -> pd.DatetimeIndex:
    """Weekday bars with exchange-holiday-like gaps of 1 to 6 business days (irregular spacing)."""
    days = pd.bdate_range("2019-11-01", periods=330, tz=tz) + pd.Timedelta(hours=hour)
    return days.delete([22, 23, 60, 61, 62, 100, 150, 151, 152, 153, 154, 155, 200, 260])


SERIES = {
    "stock_days_with_holidays": (_stock_days(), ("volume",)),
    "stock_closes_utc_1600": (_stock_days("UTC", 16), ("volume",)),
    "stock_days_new_york": (_stock_days("America/New_York"), ("volume",)),
    "fridays_with_gaps": (
        pd.date_range("2018-01-05", periods=302, freq="W-FRI").delete([50, 120]),
        ("volume",),
    ),
    "weekdays_one_weekend_bar": (
        pd.bdate_range("2020-01-01", periods=300).union(pd.DatetimeIndex(["2020-05-23"])),
        ("volume",),
    ),
    "hourly_ohlcv_amount": (pd.date_range("2024-01-01", periods=300, freq="h"), ("volume", "amount")),
    "hourly_ohlcv": (pd.date_range("2024-01-01", periods=300, freq="h"), ("volume",)),
    "hourly_prices_only": (pd.date_range("2024-01-01", periods=300, freq="h"), ()),
    "amount_without_volume": (pd.date_range("2024-01-01", periods=300, freq="15min"), ("amount",)),
    "daily_utc": (pd.date_range("2023-01-01", periods=300, freq="D", tz="UTC"), ("volume",)),
    "weekly": (pd.date_range("2018-01-07", periods=300, freq="W-SUN"), ("volume",)),
    "hourly_berlin_over_dst": (
        pd.date_range("2024-03-25", periods=300, freq="h", tz="Europe/Berlin"),
        ("volume",),
    ),
    "daily_berlin_over_dst": (
        pd.date_range("2024-10-01", periods=300, freq="D", tz="Europe/Berlin"),
        ("volume",),
    ),
    "business_days": (pd.bdate_range("2020-01-01", periods=300), ("volume",)),
    "minutes_with_gap": (_gappy_minutes(), ("volume", "amount")),
}


@pytest.mark.parametrize("kind", sorted(SERIES))
def test_sliced_windows_equal_windows_prepared_alone(kind):
    """Sliding and short (ragged) windows: every array, stamp and index bit-identical to the old path."""
    times, columns = SERIES[kind]
    frame = _bars(times, columns)
    series = PreparedSeries.from_frame(frame)
    lookback, pred_len = 64, 4
    ends = [3, 5, 40, 64, 65, 130, 151, 152, 200, 299, len(frame)]
    for end in ends:
        window = series.window(end, lookback, pred_len, CLIP)
        x, mean, std, feats, future, last_close, history_end = _old_window(
            frame.iloc[max(0, end - lookback) : end], pred_len
        )
        np.testing.assert_array_equal(window.x, x)
        np.testing.assert_array_equal(window.mean, mean)
        np.testing.assert_array_equal(window.std, std)
        np.testing.assert_array_equal(window.stamps, feats)
        assert window.x.dtype == x.dtype and window.stamps.dtype == feats.dtype
        pd.testing.assert_index_equal(pd.DatetimeIndex(window.y_index), future, exact=True)
        assert window.y_index.freq == future.freq
        assert window.last_close == last_close
        assert window.history_end == history_end


def test_even_spacing_is_recognised_and_gaps_are_not():
    assert PreparedSeries.from_frame(_bars(*SERIES["hourly_ohlcv"])).offset is not None
    assert PreparedSeries.from_frame(_bars(*SERIES["minutes_with_gap"])).offset is None
    assert PreparedSeries.from_frame(_bars(*SERIES["business_days"])).offset is None
    assert PreparedSeries.from_frame(_bars(*SERIES["daily_berlin_over_dst"])).offset is None


def test_short_window_without_y_timestamp_still_refuses_to_guess():
    series = PreparedSeries.from_frame(_bars(*SERIES["hourly_ohlcv"]))
    with pytest.raises(TimestampError, match="fewer than 3"):
        series.window(2, 64, 4, CLIP)


@pytest.mark.parametrize("use_cache", [True, False])
def test_forecast_series_equals_forecast_batch(tiny_predictor, sp500, use_cache):
    """Same windows, same seeds: forecasts from the series equal forecasts from DataFrames exactly."""
    frame = sp500.iloc[:160]
    series = PreparedSeries.from_frame(frame)
    ends = [20, 45, 46, 100, 160]  # the first is shorter than the lookback: a ragged batch
    lookback, pred_len = 40, 3
    kwargs = dict(sample_count=3, seed=[11, 12, 13, 14, 15], use_cache=use_cache)
    fast = tiny_predictor.forecast_series(series, ends, pred_len, lookback=lookback, **kwargs)
    frames = [frame.iloc[max(0, e - lookback) : e] for e in ends]
    slow = tiny_predictor.forecast_batch(frames, pred_len, **kwargs)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
        pd.testing.assert_index_equal(a.timestamps, b.timestamps, exact=True)
        assert a.last_close == b.last_close and a.history_end == b.history_end


def test_forecast_series_sliding_windows_with_amount(tiny_predictor):
    """A regular hourly series with an amount column, one window per bar, one shared seed."""
    frame = _bars(*SERIES["hourly_ohlcv_amount"])
    series = PreparedSeries.from_frame(frame)
    ends = list(range(48, 60))
    fast = tiny_predictor.forecast_series(series, ends, 2, lookback=32, sample_count=2, seed=3)
    slow = tiny_predictor.forecast_batch([frame.iloc[e - 32 : e] for e in ends], 2, sample_count=2, seed=3)
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)
        pd.testing.assert_index_equal(a.timestamps, b.timestamps, exact=True)


def test_forecast_series_rejects_ends_outside_the_series(tiny_predictor):
    series = PreparedSeries.from_frame(_bars(*SERIES["hourly_ohlcv"]))
    with pytest.raises(DataError, match="window ends must lie"):
        tiny_predictor.forecast_series(series, [10, 301], 2, lookback=8)
    assert tiny_predictor.forecast_series(series, [], 2, lookback=8) == []


def test_prepared_features_keep_the_pandas_numbers_and_layout():
    """The numpy fill equals the pandas formula (volume x row mean of prices) and stays column-major."""
    frame = _bars(*SERIES["hourly_ohlcv"], seed=5)
    prepared = prepare_ohlcv(frame)
    prices = frame[["open", "high", "low", "close"]]
    np.testing.assert_array_equal(prepared["amount"], frame["volume"] * prices.mean(axis=1))
    assert prepared.to_numpy(dtype=np.float32).flags["F_CONTIGUOUS"]  # window means sum in this order
    prices_only = prepare_ohlcv(frame[["open", "high", "low", "close"]])
    assert (prices_only[["volume", "amount"]].to_numpy() == 0).all()
    amount_only = prepare_ohlcv(frame.assign(amount=7.5).drop(columns="volume"))
    assert (amount_only["volume"] == 0).all() and (amount_only["amount"] == 7.5).all()


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize("unit", ["ns", "us", "s"])
def test_calendar_features_equal_the_pandas_fields(tz, unit):
    """Integer calendar arithmetic equals pandas' minute/hour/weekday/day/month, before 1970 and over DST."""
    ticks = np.random.default_rng(0).integers(-2 * 10**18, 4 * 10**18, 5000)
    stamps = pd.DatetimeIndex(ticks.astype("datetime64[ns]")).as_unit(unit)
    if tz is not None:
        stamps = stamps.tz_localize("UTC").tz_convert(tz)
    fields = [stamps.minute, stamps.hour, stamps.day_of_week, stamps.day, stamps.month]
    np.testing.assert_array_equal(calendar_features(stamps), np.stack(fields, axis=1).astype(np.float32))


@pytest.mark.parametrize(
    "kind", ["stock_days_with_holidays", "stock_closes_utc_1600", "weekdays_one_weekend_bar"]
)
def test_business_day_shortcut_equals_pandas_inference_at_every_end(kind):
    """Weekday bars with gaps skip pd.infer_freq; every window's future equals what inference gives."""
    times, columns = SERIES[kind]
    series = PreparedSeries.from_frame(_bars(times, columns))
    taken = 0
    for end in range(3, len(series) + 1):
        for lookback in (3, 7, 64):
            start = max(0, end - lookback)
            try:
                expected = infer_future_timestamps(times[start:end], 5)
            except TimestampError:  # too irregular to guess: the shortcut must not guess either
                with pytest.raises(TimestampError):
                    series.future(start, end, 5)
                continue
            index, feats = series.future(start, end, 5)
            pd.testing.assert_index_equal(index, expected, exact=True)
            assert index.freq == expected.freq
            np.testing.assert_array_equal(feats, calendar_features(expected))
            taken += series._business_daily(start, end)
    assert taken > len(series)  # most windows of lookback 7 and 64 take the shortcut
