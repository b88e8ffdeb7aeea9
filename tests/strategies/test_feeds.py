"""Feeds: CSV / Parquet / DataFrame loading, the predictor's validation errors, timezones through backtrader."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from kronos_model.errors import (
    DataError,
    DuplicateTimestampError,
    MissingColumnError,
    NonFiniteValueError,
    NonPositivePriceError,
    TimestampError,
    UnsortedIndexError,
)
from kronos_strategies.feeds import bar_timestamps, make_feed, read_ohlcv, slice_with_warmup


def _bars(n: int = 6, start: str = "2024-01-01", freq: str = "h") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    close = 100 + rng.normal(0, 1, n).cumsum()
    return pd.DataFrame(
        {
            "timestamp": pd.date_range(start, periods=n, freq=freq).astype(str),
            "open": close + 0.1, "high": close + 1.0, "low": close - 1.0, "close": close,
            "volume": rng.uniform(10, 20, n),
        }
    )  # fmt: skip


def test_csv_is_read_with_the_model_features(tmp_path):
    raw = _bars()
    raw.columns = [c.upper() for c in raw.columns]  # case-insensitive columns
    path = tmp_path / "bars.csv"
    raw.to_csv(path, index=False)
    frame = read_ohlcv(path)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "amount"]
    assert frame.index.name == "timestamp"
    np.testing.assert_array_equal(frame["close"].to_numpy(), raw["CLOSE"].to_numpy())
    # amount is filled the way kronos_model fills it: volume x mean price
    expected = raw["VOLUME"] * raw[["OPEN", "HIGH", "LOW", "CLOSE"]].mean(axis=1)
    np.testing.assert_allclose(frame["amount"].to_numpy(), expected.to_numpy())


def test_parquet_and_dataframe_give_the_same_frame(tmp_path):
    raw = _bars()
    path = tmp_path / "bars.parquet"
    raw.to_parquet(path)
    pd.testing.assert_frame_equal(read_ohlcv(path), read_ohlcv(raw))


def test_epoch_milliseconds_are_utc(tmp_path):
    raw = _bars()
    raw["timestamp"] = pd.to_datetime(raw["timestamp"]).astype("int64") // 10**6  # ccxt style
    frame = read_ohlcv(raw)
    assert str(frame.index.tz) == "UTC"
    assert frame.index[0] == pd.Timestamp("2024-01-01", tz="UTC")


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda d: d.iloc[[0, 2, 1, 3, 4, 5]], UnsortedIndexError, "not sorted"),
        (lambda d: d.assign(timestamp=d["timestamp"].where(d.index != 3, d["timestamp"][2])),
         DuplicateTimestampError, "duplicate timestamp"),
        (lambda d: d.assign(close=d["close"].where(d.index != 4, np.nan)), NonFiniteValueError, "NaN"),
        (lambda d: d.assign(low=d["low"].where(d.index != 1, -1.0)), NonPositivePriceError, "non-positive"),
        (lambda d: d.assign(open=d["open"].where(d.index != 1, 0.0)), NonPositivePriceError, "non-positive"),
        (lambda d: d.drop(columns=["high"]), MissingColumnError, "high"),
        (lambda d: d.assign(timestamp="not a date"), TimestampError, "timestamps"),
    ],
)  # fmt: skip
def test_bad_bars_raise_a_named_error(tmp_path, mutate, error, match):
    bad = mutate(_bars())
    with pytest.raises(error, match=match):
        read_ohlcv(bad)
    path = tmp_path / "bad.csv"  # the same error from a file
    bad.to_csv(path, index=False)
    with pytest.raises(error, match=match):
        read_ohlcv(path)


def test_missing_file_and_missing_timestamps():
    with pytest.raises(DataError, match="does not exist"):
        read_ohlcv("no/such/file.csv")
    with pytest.raises(TimestampError, match="no timestamp column"):
        read_ohlcv(_bars().drop(columns=["timestamp"]))


def _through_backtrader(frame: pd.DataFrame) -> tuple[pd.DatetimeIndex, list]:
    cerebro = bt.Cerebro(stdstats=False)
    feed = make_feed(frame)
    cerebro.adddata(feed)
    seen: list = []

    class Look(bt.Strategy):
        def next(self) -> None:
            seen.append(self.data.datetime.datetime(0))

    cerebro.addstrategy(Look)
    cerebro.run()
    return bar_timestamps(feed, np.asarray(feed.datetime.array)), seen


def test_timezone_survives_backtrader(tmp_path):
    raw = _bars(n=8, freq="5min")
    raw["timestamp"] = pd.to_datetime(raw["timestamp"]).dt.tz_localize("Asia/Shanghai").astype(str)  # +08:00
    path = tmp_path / "sse.csv"
    raw.to_csv(path, index=False)
    frame = read_ohlcv(path)
    assert frame.index[0].utcoffset() == pd.Timedelta(hours=8)
    stamps, seen = _through_backtrader(frame)
    assert stamps.equals(frame.index)  # exact, with the +08:00 offset
    # backtrader's own datetime() shows local wall-clock time (the hour the model's stamp features use)
    assert [d.hour for d in seen] == list(frame.index.hour)


def test_dst_offsets_convert_to_one_timezone():
    raw = _bars(n=3)
    raw["timestamp"] = ["2021-03-27 10:00+01:00", "2021-03-29 10:00+02:00", "2021-03-30 10:00+02:00"]
    frame = read_ohlcv(raw, tz="Europe/Berlin")
    assert list(frame.index.hour) == [10, 10, 10]
    stamps, _ = _through_backtrader(frame)
    assert stamps.equals(frame.index)


def test_naive_daily_bars_round_trip(sp500_bars):
    frame = sp500_bars.iloc[:40]
    stamps, seen = _through_backtrader(frame)
    assert stamps.equals(frame.index)
    assert pd.DatetimeIndex(seen).equals(pd.DatetimeIndex(frame.index, name=None))


def test_slice_with_warmup_keeps_history_before_start(sp500_bars):
    part, start = slice_with_warmup(sp500_bars, "2015-01-01", "2015-02-01", warmup=10)
    assert start == pd.Timestamp("2015-01-02")
    assert (part.index < start).sum() == 10
    assert part.index[-1] <= pd.Timestamp("2015-02-01")
