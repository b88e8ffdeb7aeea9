"""A series validated once, then cut into any number of forecast windows as array slices.

:class:`PreparedSeries` holds the six model features, the calendar features of every bar and, when the
bars are evenly spaced, the bar interval. A window is then a slice of those arrays plus the calendar
features of its future bars, taken from the series extended by ``pred_len`` steps of its interval. Every
number equals what validating and preparing the window's own DataFrame gives (the tests compare both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.offsets import BDay

from .data import (
    FEATURE_COLUMNS,
    calendar_features,
    check_time_order,
    frame_timestamps,
    infer_future_timestamps,
    prepare_values,
    to_timestamps,
    window_stats,
)
from .errors import InsufficientHistoryError, TimestampError


def _day_ticks(times: pd.DatetimeIndex) -> int:
    """One day in the integer ticks of ``times.asi8`` (their unit may be s, ms, us or ns)."""
    return pd.Timedelta(days=1) // pd.Timedelta(1, unit=times.unit)


@dataclass
class ForecastWindow:
    """One validated, normalised forecast window, ready for the model."""

    x: np.ndarray  # [L, 6] float32 normalised and clipped
    mean: np.ndarray  # [6]
    std: np.ndarray  # [6]
    stamps: np.ndarray  # [L + P, 5] float32
    y_index: pd.Index
    last_close: float
    history_end: pd.Timestamp


@dataclass
class PreparedSeries:
    """One OHLCV series validated once: features, calendar stamps and times of every bar."""

    name: str
    values: np.ndarray  # [N, 6] float64, the prepared features (what the cache keys hash)
    times: pd.DatetimeIndex
    features: np.ndarray = field(repr=False)  # [N, 5] float32 calendar features
    values32: np.ndarray = field(repr=False)  # [N, 6] float32, column-major like DataFrame.to_numpy
    _offset: Any = field(default=False, repr=False)  # False: not looked at yet
    _weekday_counts: Any = field(default=None, repr=False)  # prefix counts for the business-day shortcut
    _future: dict[int, tuple[pd.DatetimeIndex, np.ndarray]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_frame(
        cls, df: pd.DataFrame, x_timestamp: Any = None, *, name: str = "df", min_bars: int = 1
    ) -> PreparedSeries:
        """Validate ``df`` (timestamps from ``x_timestamp``, a timestamp column or a DatetimeIndex) once."""
        values = prepare_values(df, name=name)
        if len(values) < min_bars:
            raise InsufficientHistoryError(f"{name} has {len(values)} bar(s); at least {min_bars} are needed")
        times = frame_timestamps(df, x_timestamp)
        if len(times) != len(values):
            raise TimestampError(
                f"{name}: x_timestamp has {len(times)} entries but the data has {len(values)} rows"
            )
        return cls.from_arrays(values, times, name=name)

    @classmethod
    def from_arrays(
        cls, values: np.ndarray, times: pd.DatetimeIndex, *, name: str = "series"
    ) -> PreparedSeries:
        """Wrap features [N, 6] already through ``prepare_ohlcv`` and their times (checked for order here)."""
        check_time_order(times, name=f"{name} timestamps")
        values = np.ascontiguousarray(values, dtype=np.float64)
        return cls(
            name=name,
            values=values,
            times=times,
            features=calendar_features(times),
            values32=np.asfortranarray(values, dtype=np.float32),  # the layout (and sums) of to_numpy
        )

    def __len__(self) -> int:
        return len(self.values)

    @property
    def offset(self) -> Any:
        """The bar interval as a pandas offset when all bars are evenly spaced, else None (found once)."""
        if self._offset is False:
            self._offset = _regular_offset(self.times)
        return self._offset

    def frame(self, start: int, end: int) -> pd.DataFrame:
        """Bars ``start:end`` as the prepared six-feature DataFrame indexed by their times."""
        return pd.DataFrame(
            self.values[start:end], index=self.times[start:end], columns=list(FEATURE_COLUMNS)
        )

    def future(self, start: int, end: int, pred_len: int) -> tuple[pd.Index, np.ndarray]:
        """Times and calendar features of the ``pred_len`` bars after bar ``end - 1`` (history ``start:end``).

        Evenly spaced series read them from the series extended by its interval; otherwise the window's own
        history infers them, exactly as :func:`~kronos_model.data.infer_future_timestamps` does.
        """
        if end == len(self) or end - start < 3 or self.offset is None:  # one window: infer it directly
            if end - start >= 3 and self._business_daily(start, end):
                last = self.times[end - 1]
                index = pd.date_range(last + BDay(), periods=pred_len, freq="B", name=self.times.name)
            else:
                index = infer_future_timestamps(self.times[start:end], pred_len)
            return index, calendar_features(index)
        times, feats = self._extended(pred_len)
        return times[end : end + pred_len], feats[end : end + pred_len]

    def _business_daily(self, start: int, end: int) -> bool:
        """Whether :func:`infer_future_timestamps` continues history ``start:end`` by business days.

        It does when the (up to 60) bars it looks at all fall on weekdays, one-day steps are more than half
        of their steps (pandas then finds 'B', or no frequency and the one-day fallback gives 'B'), and not
        every step is one day (that would be 'D'). Answered from prefix counts instead of ``pd.infer_freq``.
        """
        if self.times.tz is not None and str(self.times.tz) != "UTC":
            return False  # calendar and absolute days differ around DST changes: let pandas decide
        if self._weekday_counts is None:
            weekend = np.concatenate([[0], np.cumsum(self.features[:, 2] >= 5)])  # wall-clock weekday
            one_day = np.concatenate([[0], np.cumsum(np.diff(self.times.asi8) == _day_ticks(self.times))])
            self._weekday_counts = (weekend, one_day)
        weekend, one_day = self._weekday_counts
        first = max(start, end - 60)
        steps = end - 1 - first
        ones = int(one_day[end - 1] - one_day[first])
        return weekend[end] == weekend[first] and 2 * ones > steps and ones < steps

    def _extended(self, pred_len: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """All bar times continued by ``pred_len`` steps, with their calendar features (cached per length)."""
        if pred_len not in self._future:
            n = len(self.times)
            times = pd.date_range(self.times[0], periods=n + pred_len, freq=self.offset, name=self.times.name)
            feats = np.concatenate([self.features, calendar_features(times[n:])])
            self._future[pred_len] = (times, feats)
        return self._future[pred_len]

    def window(
        self, end: int, lookback: int, pred_len: int, clip: float, y_timestamp: Any = None
    ) -> ForecastWindow:
        """The window of the ``lookback`` bars ending at bar ``end - 1`` (fewer when the series is shorter)."""
        start = max(0, end - lookback)
        if y_timestamp is None:
            y_index, y_feats = self.future(start, end, pred_len)
            y_last = None
        else:
            y_stamps = to_timestamps(y_timestamp, name="y_timestamp")
            y_index = _output_index(y_timestamp, y_stamps)
            if len(y_stamps) != pred_len:
                raise TimestampError(
                    f"{self.name}: y_timestamp has {len(y_stamps)} entries but pred_len is {pred_len}"
                )
            check_time_order(y_stamps, name="y_timestamp")
            y_feats, y_last = calendar_features(y_stamps), y_stamps[0]
        history_end = self.times[end - 1]
        if y_last is not None and y_last <= history_end:
            raise TimestampError(
                f"{self.name}: the first y_timestamp {y_last} is not after the last history bar {history_end}"
            )
        raw = self.values32[start:end]
        mean, std = window_stats(raw)
        x = np.clip((raw - mean) / (std + 1e-5), -clip, clip)
        stamps = np.concatenate([self.features[start:end], y_feats])
        return ForecastWindow(x, mean, std, stamps, y_index, float(self.values[end - 1, 3]), history_end)


def _regular_offset(times: pd.DatetimeIndex) -> Any:
    """The pandas offset of evenly spaced bars (what frequency inference finds for any window), else None.

    Day-or-longer steps count only for naive or UTC times, where calendar and absolute days agree.
    """
    if len(times) < 3:
        return None
    steps = np.diff(times.asi8)
    if not (steps == steps[0]).all() or steps[0] <= 0:
        return None
    if steps[0] >= _day_ticks(times) and times.tz is not None and str(times.tz) != "UTC":
        return None
    offset = infer_future_timestamps(times[-min(len(times), 60) :], 1).freq
    if offset is None:
        return None
    check = pd.date_range(times[0], periods=len(times), freq=offset)
    if check.dtype != times.dtype or not np.array_equal(check.asi8, times.asi8):
        return None
    return offset


def _output_index(y_timestamp: Any, stamps: pd.DatetimeIndex) -> pd.Index:
    """The reference indexes output by ``y_timestamp``: a Series becomes an index of its values and name."""
    if isinstance(y_timestamp, pd.Series):
        return pd.Index(y_timestamp.to_numpy(), name=y_timestamp.name)
    if isinstance(y_timestamp, pd.Index):
        return y_timestamp
    return stamps
