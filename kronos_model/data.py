"""OHLCV input checks and feature preparation shared by the predictor, training and the backtrader feeds."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .errors import (
    DataError,
    DuplicateTimestampError,
    MissingColumnError,
    NonFiniteValueError,
    NonPositivePriceError,
    TimestampError,
    UnsortedIndexError,
)

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
FEATURE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "amount")
STAMP_FIELDS: tuple[str, ...] = ("minute", "hour", "weekday", "day", "month")


def _position(index: pd.Index, pos: int, first_line: int | None = None) -> str:
    """``at 2020-01-03 (position 2, file line 4)`` for a timestamped row; ``at position 2 (index 'x')`` otherwise."""
    line = f", file line {first_line + pos}" if first_line is not None else ""
    if isinstance(index, pd.DatetimeIndex):
        return f"at {index[pos]} (position {pos}{line})"
    return f"at position {pos} (index {index[pos]!r}{line})"


def prepare_ohlcv(df: pd.DataFrame, *, name: str = "df") -> pd.DataFrame:
    """Validate an OHLCV frame and return a float copy with the six model features.

    Fills follow the reference: no ``volume`` -> volume and amount are 0; no ``amount`` ->
    ``amount = volume * mean(open, high, low, close)``. Unlike the reference, an existing ``amount``
    is kept when only ``volume`` is missing. Raises a :class:`DataError` subclass naming the problem.
    """
    values = prepare_values(df, name=name)
    return pd.DataFrame(values, index=df.index, columns=list(FEATURE_COLUMNS))


def prepare_values(df: pd.DataFrame, *, name: str = "df") -> np.ndarray:
    """:func:`prepare_ohlcv` as a column-major float64 array [N, 6] (no DataFrame built: the fast path)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    return prepare_columns(df, df.index, name=name, first_line=df.attrs.get("first_line"))


def _floats(column: Any) -> np.ndarray:
    """A column as float64 (pandas' own conversion for a Series, so its errors are pandas')."""
    if isinstance(column, pd.Series):
        return column.to_numpy(dtype=np.float64)
    return np.asarray(column, dtype=np.float64)


def prepare_columns(
    columns: Mapping[str, Any], index: pd.Index, *, name: str = "series", first_line: int | None = None
) -> np.ndarray:
    """:func:`prepare_values` for named columns (a DataFrame, or a feed's arrays by line name) and their index.

    ``index`` labels rows in error messages (timestamps when it is a DatetimeIndex).
    """
    missing = [c for c in PRICE_COLUMNS if c not in columns]
    if missing:
        raise MissingColumnError(
            f"{name} is missing required price column(s) {missing}; it has {list(columns)}"
        )
    given = [c for c in FEATURE_COLUMNS if c in columns]
    try:
        raw = np.column_stack([_floats(columns[c]) for c in given])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} has non-numeric values in the OHLCV columns: {exc}") from exc

    def where(mask: np.ndarray, label: str) -> str:
        pos = int(np.flatnonzero(mask)[0])
        return f"{label}: {int(mask.sum())} row(s), first {_position(index, pos, first_line)}"

    finite = np.isfinite(raw)
    if not finite.all():
        cols = [c for j, c in enumerate(given) if not finite[:, j].all()]
        raise NonFiniteValueError(where(~finite.all(axis=1), f"{name} has NaN/inf values in {cols}"))
    values = np.zeros((len(raw), len(FEATURE_COLUMNS)), order="F")  # column-major, as pandas keeps it
    for j, c in enumerate(given):
        values[:, FEATURE_COLUMNS.index(c)] = raw[:, j]
    if "volume" in given and "amount" not in given:
        values[:, 5] = values[:, 4] * values[:, :4].mean(axis=1)
    prices = values[:, :4]
    if (prices <= 0).any():
        raise NonPositivePriceError(where((prices <= 0).any(axis=1), f"{name} has non-positive prices"))
    if (values[:, 1] < values[:, 2]).any():
        raise NonPositivePriceError(where(values[:, 1] < values[:, 2], f"{name} has high < low"))
    if (values[:, 4:] < 0).any():
        raise DataError(where((values[:, 4:] < 0).any(axis=1), f"{name} has negative volume/amount"))
    return values


def to_timestamps(stamps: object, *, name: str = "timestamps") -> pd.DatetimeIndex:
    """Turn a Series, DatetimeIndex or sequence of datetimes into a DatetimeIndex (values kept as given)."""
    if stamps is None:
        raise TimestampError(f"{name} is required")
    try:
        if isinstance(stamps, pd.Series) and pd.api.types.is_datetime64_any_dtype(stamps):
            idx = pd.DatetimeIndex(stamps)
        else:
            idx = pd.DatetimeIndex(pd.to_datetime(stamps))
    except (TypeError, ValueError, AttributeError) as exc:
        raise TimestampError(f"{name} cannot be read as datetimes: {exc}") from exc
    if idx.hasnans:
        raise TimestampError(f"{name} contains missing (NaT) timestamps")
    return idx


def check_time_order(
    stamps: pd.DatetimeIndex, *, name: str = "timestamps", first_line: int | None = None
) -> None:
    """Raise if timestamps are duplicated or not strictly increasing (``first_line``: file line of row 0)."""
    if len(stamps) < 2:
        return
    diffs = np.diff(stamps.asi8)
    if (diffs == 0).any():
        pos = int(np.flatnonzero(diffs == 0)[0]) + 1
        raise DuplicateTimestampError(
            f"{name} has a duplicate timestamp {_position(stamps, pos, first_line)}"
        )
    if (diffs < 0).any():
        pos = int(np.flatnonzero(diffs < 0)[0]) + 1
        raise UnsortedIndexError(
            f"{name} is not sorted: {_position(stamps, pos, first_line)} comes after {stamps[pos - 1]}"
        )


_TICKS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def calendar_features(stamps: pd.DatetimeIndex) -> np.ndarray:
    """Calendar features [minute, hour, weekday (Mon=0), day, month] of the wall-clock times, float32 [T, 5].

    Integer arithmetic on the local times (what pandas' field accessors give, without their per-field cost).
    """
    stamps = pd.DatetimeIndex(stamps)
    wall = stamps.tz_localize(None) if stamps.tz is not None else stamps
    ticks, per_second = wall.asi8, _TICKS_PER_SECOND[wall.unit]
    days = ticks // (86_400 * per_second)  # floor: correct before 1970 too
    minutes = (ticks - days * (86_400 * per_second)) // (60 * per_second)
    dates = days.astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    out = np.empty((len(ticks), 5), np.float32)
    out[:, 0] = minutes % 60
    out[:, 1] = minutes // 60
    out[:, 2] = (days + 3) % 7  # 1970-01-01 was a Thursday
    out[:, 3] = (dates - months).astype(np.int64) + 1
    out[:, 4] = months.astype(np.int64) % 12 + 1
    return out


def infer_future_timestamps(stamps: pd.DatetimeIndex, pred_len: int) -> pd.DatetimeIndex:
    """Continue ``stamps`` by ``pred_len`` steps of their own frequency (business days for daily stock bars)."""
    if len(stamps) < 3:
        raise TimestampError("cannot infer the bar frequency from fewer than 3 timestamps; pass y_timestamp")
    recent = stamps[-min(len(stamps), 60) :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 announces a change of infer_freq's return type
        freq = pd.infer_freq(recent)
    if freq is None:  # the most common step, when it covers more than half of them (so it is unique)
        values, counts = np.unique(np.diff(recent.asi8), return_counts=True)
        delta = pd.Timedelta(int(values[np.argmax(counts)]), unit=recent.unit)
        if counts.max() * 2 <= counts.sum() or delta <= pd.Timedelta(0):
            raise TimestampError(
                "cannot infer the bar frequency from the history (irregular spacing); pass y_timestamp"
            )
        if delta == pd.Timedelta(days=1) and (recent.day_of_week < 5).all():
            freq = "B"
        else:
            return pd.DatetimeIndex([stamps[-1] + delta * (i + 1) for i in range(pred_len)], name=stamps.name)
    offset = pd.tseries.frequencies.to_offset(freq)
    return pd.date_range(stamps[-1] + offset, periods=pred_len, freq=offset, name=stamps.name)


def frame_timestamps(df: pd.DataFrame, x_timestamp: object | None = None) -> pd.DatetimeIndex:
    """Pick the history timestamps: explicit ``x_timestamp``, a ``timestamp(s)`` column, or a DatetimeIndex."""
    if x_timestamp is not None:
        return to_timestamps(x_timestamp, name="x_timestamp")
    for col in ("timestamps", "timestamp", "date", "datetime"):
        if col in df.columns:
            return to_timestamps(df[col], name=f"df[{col!r}]")
    if isinstance(df.index, pd.DatetimeIndex):
        return pd.DatetimeIndex(df.index)
    raise TimestampError("no timestamps: pass x_timestamp, give df a DatetimeIndex, or a 'timestamp' column")


def window_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and population std over the lookback rows (float32), as the reference computes them."""
    x = np.asarray(x, dtype=np.float32)
    return np.mean(x, axis=0), np.std(x, axis=0)


def normalize(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float) -> np.ndarray:
    """(x - mean) / (std + 1e-5), clipped to +-clip, float32."""
    return np.clip((np.asarray(x, dtype=np.float32) - mean) / (std + 1e-5), -clip, clip)
