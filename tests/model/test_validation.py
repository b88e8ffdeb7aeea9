"""Every bad input to the predictor gets a named, specific error (never a torch traceback)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_model.errors import (
    DataError,
    DuplicateTimestampError,
    InsufficientHistoryError,
    MissingColumnError,
    NonFiniteValueError,
    NonPositivePriceError,
    SamplingError,
    TimestampError,
    UnsortedIndexError,
)

PRED = 4


@pytest.fixture()
def window(sp500):
    df = sp500.iloc[:60].copy()
    x_ts = pd.Series(df.index, name="timestamp")
    y_ts = pd.Series(sp500.index[60 : 60 + PRED], name="timestamp")
    return df.reset_index(drop=True), x_ts, y_ts


def _predict(pred, df, x, y, **kw):
    return pred.predict(df, x, y, pred_len=kw.pop("pred_len", PRED), top_k=1, verbose=False, **kw)


def test_missing_column(tiny_predictor, window):
    df, x, y = window
    with pytest.raises(MissingColumnError, match=r"missing required price column.*'low'"):
        _predict(tiny_predictor, df.drop(columns=["low"]), x, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf(tiny_predictor, window, bad):
    df, x, y = window
    df.loc[7, "close"] = bad
    with pytest.raises(NonFiniteValueError, match=r"NaN/inf values in \['close'\].*position 7"):
        _predict(tiny_predictor, df, x, y)


def test_non_positive_price(tiny_predictor, window):
    df, x, y = window
    df.loc[3, "open"] = 0.0
    with pytest.raises(NonPositivePriceError, match="non-positive prices.*position 3"):
        _predict(tiny_predictor, df, x, y)


def test_high_below_low(tiny_predictor, window):
    df, x, y = window
    df.loc[5, "high"] = df.loc[5, "low"] - 1
    with pytest.raises(NonPositivePriceError, match="high < low.*position 5"):
        _predict(tiny_predictor, df, x, y)


def test_unsorted_timestamps(tiny_predictor, window):
    df, x, y = window
    x = x.copy()
    x.iloc[[10, 11]] = x.iloc[[11, 10]].to_numpy()
    with pytest.raises(UnsortedIndexError, match="not sorted.*position 11"):
        _predict(tiny_predictor, df, x, y)


def test_duplicate_timestamps(tiny_predictor, window):
    df, x, y = window
    x = x.copy()
    x.iloc[20] = x.iloc[19]
    with pytest.raises(DuplicateTimestampError, match="duplicate timestamp.*position 20"):
        _predict(tiny_predictor, df, x, y)


def test_history_too_short(tiny_predictor, window):
    df, x, y = window
    with pytest.raises(InsufficientHistoryError, match="1 bar.*at least 2"):
        _predict(tiny_predictor, df.iloc[:1], x.iloc[:1], y)


def test_y_timestamp_length(tiny_predictor, window):
    df, x, y = window
    with pytest.raises(TimestampError, match="y_timestamp has 4 entries but pred_len is 6"):
        _predict(tiny_predictor, df, x, y, pred_len=6)


def test_x_timestamp_length(tiny_predictor, window):
    df, x, y = window
    with pytest.raises(TimestampError, match="x_timestamp has 59 entries but the data has 60 rows"):
        _predict(tiny_predictor, df, x.iloc[:-1], y)


def test_y_before_history(tiny_predictor, window):
    df, x, y = window
    with pytest.raises(TimestampError, match="not after the last history bar"):
        _predict(tiny_predictor, df, x, x.iloc[:PRED])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(T=0.0), "temperature T must be > 0"),
        (dict(T=-1.0), "temperature T must be > 0"),
        (dict(top_p=0.0), r"top_p must lie in \(0, 1\]"),
        (dict(top_p=1.5), r"top_p must lie in \(0, 1\]"),
        (dict(top_k=-1), "top_k must be an integer >= 0"),
        (dict(sample_count=0), "sample_count must be an integer >= 1"),
    ],
)
def test_bad_sampling_args(tiny_predictor, window, kwargs, message):
    df, x, y = window
    with pytest.raises(SamplingError, match=message):
        tiny_predictor.predict(df, x, y, pred_len=PRED, verbose=False, **{"top_k": 1, **kwargs})


def test_not_a_dataframe(tiny_predictor, window):
    _, x, y = window
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        _predict(tiny_predictor, np.ones((60, 5)), x, y)


def test_volume_amount_fills(tiny_predictor, window):
    """No volume and no amount -> zeros; volume only -> amount derived; amount only -> kept (unlike the reference)."""
    from kronos_model.data import prepare_ohlcv

    df, _, _ = window
    none = prepare_ohlcv(df.drop(columns=["volume"]))
    assert (none["volume"] == 0).all() and (none["amount"] == 0).all()
    derived = prepare_ohlcv(df)
    expected = df["volume"] * df[["open", "high", "low", "close"]].mean(axis=1)
    np.testing.assert_allclose(derived["amount"].to_numpy(), expected.to_numpy())
    amount_only = df.drop(columns=["volume"]).assign(amount=np.arange(len(df), dtype=float) + 1)
    kept = prepare_ohlcv(amount_only)
    np.testing.assert_array_equal(kept["amount"].to_numpy(), np.arange(len(df), dtype=float) + 1)
    assert (kept["volume"] == 0).all()


def test_datetimeindex_timestamps_accepted(tiny_predictor, window):
    """Unlike the reference, DatetimeIndex timestamps work and give the same forecast as Series."""
    df, x, y = window
    a = _predict(tiny_predictor, df, x, y)
    b = _predict(tiny_predictor, df, pd.DatetimeIndex(x), pd.DatetimeIndex(y))
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_string_timestamps_are_parsed(tiny_predictor, window):
    df, x, y = window
    a = _predict(tiny_predictor, df, x, y)
    b = _predict(tiny_predictor, df, x.dt.strftime("%Y-%m-%d"), y.dt.strftime("%Y-%m-%d"))
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_prepare_columns_equals_prepare_values_and_names_the_bar():
    """The feed path (arrays by line name) gives the DataFrame path's numbers and names bad bars by time."""
    from kronos_model.data import prepare_columns, prepare_values

    idx = pd.date_range("2020-01-01", periods=5, freq="D")
    cols = {"open": [1.0, 2, 3, 4, 5], "high": [2.0, 3, 4, 5, 6], "low": [0.5, 1, 2, 3, 4],
            "close": [1.5, 2, 3, 4, 5], "volume": [10.0, 11, 12, 13, 14]}  # fmt: skip
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    np.testing.assert_array_equal(prepare_columns(arrays, idx), prepare_values(pd.DataFrame(cols, index=idx)))
    arrays["close"][2] = np.nan
    with pytest.raises(NonFiniteValueError, match=r"at 2020-01-03 00:00:00 \(position 2\)"):
        prepare_columns(arrays, idx, name="feed")
