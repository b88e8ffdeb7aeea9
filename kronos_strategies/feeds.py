"""Load OHLCV from CSV, Parquet, a DataFrame or a built-in data set into a validated backtrader feed.

Validation is the predictor's own (``kronos_model.data``): the same errors for the same bad input,
whether it reaches the model through a backtest or a direct ``forecast`` call.
"""

from __future__ import annotations

import datetime
import hashlib
import warnings
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from kronos_model.data import FEATURE_COLUMNS, check_time_order, prepare_ohlcv, to_timestamps
from kronos_model.errors import DataError, InsufficientHistoryError, TimestampError

__all__ = [
    "DATASETS",
    "KronosFeed",
    "as_index_time",
    "bar_timestamps",
    "data_fingerprint",
    "load_dataset",
    "make_feed",
    "read_ohlcv",
    "slice_with_warmup",
]

# Names accepted for the timestamp column, in order of preference (compared lower-case).
_STAMP_NAMES: tuple[str, ...] = ("timestamp", "timestamps", "datetime", "date", "time", "open_time")
# Column aliases folded onto the model's feature names.
_ALIASES: dict[str, str] = {"vol": "volume", "quote_volume": "amount", "turnover": "amount"}
# Days between 0001-01-01 (backtrader's date-number origin, plus one) and the Unix epoch.
_EPOCH_DAYNUM = 719163.0
_US_PER_DAY = 86_400_000_000


def _load_sp500() -> pd.DataFrame:
    """S&P 500 daily bars 1999-2018 shipped with the ``arch`` package (offline)."""
    from arch.data import sp500

    return sp500.load()


DATASETS = {"sp500": _load_sp500}


def load_dataset(name: str) -> pd.DataFrame:
    """A raw built-in data set by name (see ``DATASETS``); nothing is downloaded."""
    try:
        loader = DATASETS[name]
    except KeyError:
        raise DataError(f"unknown data set {name!r}; built-in data sets are {sorted(DATASETS)}") from None
    return loader()


def _read_file(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a raw DataFrame."""
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise DataError(f"reading {path} needs pyarrow: pip install 'kronos-bt[parquet]'") from exc
    if suffix in (".csv", ".txt", ".gz"):
        try:
            raw = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataError(f"data file {str(path)!r} is empty (0 bytes): export the bars again") from None
        except pd.errors.ParserError as exc:
            raise DataError(f"data file {str(path)!r} is not a readable CSV: {exc}") from None
        if len(raw.columns) == 1 and any(sep in str(raw.columns[0]) for sep in ";\t|"):
            sep = next(s for s in ";\t|" if s in str(raw.columns[0]))
            raise DataError(
                f"data file {str(path)!r} is delimited by {sep!r}, not commas; save it as a comma-separated CSV "
                f"(pandas: df.to_csv(path)) or convert it with: sed 's/{sep}/,/g'"
            )
        raw.attrs["first_line"] = 2  # row 0 is on the line after the header
        return raw
    raise DataError(f"cannot read {path}: use a .csv or .parquet file")


def _stamp_column(df: pd.DataFrame, timestamp_column: str | None) -> str | None:
    """Name of the timestamp column, or None when the index holds the timestamps."""
    if timestamp_column is not None:
        if timestamp_column not in df.columns:
            raise TimestampError(
                f"timestamp column {timestamp_column!r} not found; columns are {list(df.columns)}"
            )
        return timestamp_column
    for col in _STAMP_NAMES:
        if col in df.columns:
            return col
    if isinstance(df.index, pd.DatetimeIndex) or str(df.index.name or "").lower() in _STAMP_NAMES:
        return None
    raise TimestampError(
        f"no timestamp column found: name one of {list(_STAMP_NAMES)}, set timestamp_column, "
        f"or give the DataFrame a DatetimeIndex; columns are {list(df.columns)}"
    )


def _first_bad_stamp(values: pd.Series, first_line: int | None) -> str:
    """``: first unreadable value 'x' at position 4 (file line 6)`` for an error message, or ''."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy() & values.notna().to_numpy())
    if not len(bad):
        return ""
    pos = int(bad[0])
    line = f", file line {first_line + pos}" if first_line is not None else ""
    return f"; first unreadable value {values.iloc[pos]!r} at position {pos}{line}"


def _parse_stamps(values: pd.Series | pd.Index, name: str, first_line: int | None = None) -> pd.DatetimeIndex:
    """Timestamps from datetimes, strings (mixed UTC offsets allowed) or Unix epochs in s or ms."""
    values = pd.Series(values)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        if values.isna().any():
            raise TimestampError(f"{name} contains missing timestamps")
        unit = "ms" if float(values.abs().max()) > 1e11 else "s"
        return pd.DatetimeIndex(pd.to_datetime(values.to_numpy(), unit=unit, utc=True))
    if not pd.api.types.is_datetime64_any_dtype(values):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pandas' "could not infer format" notice
            try:
                values = pd.Series(pd.to_datetime(values))
            except (TypeError, ValueError):
                try:  # strings with different UTC offsets (DST) only parse into one UTC index
                    values = pd.Series(pd.to_datetime(values, utc=True))
                except (TypeError, ValueError) as exc:
                    where = _first_bad_stamp(values, first_line)
                    raise TimestampError(f"{name} cannot be read as datetimes{where or f': {exc}'}") from None
    return to_timestamps(values, name=name)


def read_ohlcv(
    source: str | Path | pd.DataFrame,
    *,
    timestamp_column: str | None = None,
    tz: str | None = None,
    name: str | None = None,
) -> pd.DataFrame:
    """Load and validate OHLCV bars into float64 ``open, high, low, close, volume, amount``.

    ``source`` is a CSV/Parquet path or a DataFrame with a timestamp column or DatetimeIndex.
    Column names are matched case-insensitively. ``tz`` localises naive timestamps (or converts
    aware ones). The result has a strictly increasing DatetimeIndex named ``timestamp``.
    Raises a ``DataError`` subclass naming the problem (unsorted, duplicate, NaN, non-positive...).
    """
    label = name or (source if isinstance(source, str | Path) else "data")
    raw = source.copy() if isinstance(source, pd.DataFrame) else _read_file(Path(source))
    if not isinstance(raw, pd.DataFrame):
        raise DataError(f"{label} must be a DataFrame, CSV or Parquet file, got {type(source).__name__}")
    if len(raw) == 0:
        raise DataError(f"{label} has no rows (only a header {list(raw.columns)}): it needs OHLCV bars")
    first_line = raw.attrs.get("first_line")
    raw.columns = [_ALIASES.get(str(c).strip().lower(), str(c).strip().lower()) for c in raw.columns]
    col = _stamp_column(raw, timestamp_column.lower() if timestamp_column else None)
    stamps = _parse_stamps(raw[col] if col else raw.index, f"{label} timestamps", first_line)
    if tz is not None:
        try:
            stamps = stamps.tz_convert(tz) if stamps.tz is not None else stamps.tz_localize(tz)
        except Exception as exc:  # noqa: BLE001 - unknown zone names raise zoneinfo/pytz/dateutil errors
            if "nonexistent" in type(exc).__name__.lower() or "ambiguous" in type(exc).__name__.lower():
                raise TimestampError(f"{label} timestamps cannot be localised to {tz}: {exc}") from None
            raise TimestampError(
                f"time zone {tz!r} is not known; use an IANA name like 'UTC' or 'America/New_York'"
            ) from None
    check_time_order(stamps, name=f"{label} timestamps", first_line=first_line)
    raw = raw.drop(columns=[col]) if col else raw
    raw.index = pd.DatetimeIndex(stamps, name="timestamp")
    if first_line is not None:
        raw.attrs["first_line"] = first_line
    frame = prepare_ohlcv(raw, name=str(label))
    frame.index = pd.DatetimeIndex(stamps, name="timestamp")
    frame.attrs = {"source_columns": [str(c) for c in raw.columns]}  # for the data checks' warnings
    return frame


def slice_with_warmup(
    frame: pd.DataFrame, start: object | None, end: object | None, warmup: int
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Bars from ``warmup`` bars before ``start`` through ``end``, and the first bar at or after ``start``.

    The warm-up bars only feed the first lookback window; trading starts at the returned timestamp.
    """
    idx = frame.index
    lo = 0 if start is None else int(idx.searchsorted(as_index_time(start, idx), side="left"))
    hi = len(idx) if end is None else int(idx.searchsorted(as_index_time(end, idx), side="right"))
    if hi <= lo:
        raise InsufficientHistoryError(
            f"no bars from {start or 'the start'} to {end or 'the end'}; the data covers {idx[0]} .. {idx[-1]}"
        )
    return frame.iloc[max(0, lo - warmup) : hi], idx[lo]


def as_index_time(value: object, idx: pd.DatetimeIndex) -> pd.Timestamp:
    """A date bound in the index's timezone (naive bounds are read as local to the data)."""
    stamp = pd.Timestamp(value)
    if idx.tz is not None:
        stamp = stamp.tz_localize(idx.tz) if stamp.tzinfo is None else stamp.tz_convert(idx.tz)
    elif stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


def data_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over the bar values and timestamps, for run manifests and cache bookkeeping."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(frame[list(FEATURE_COLUMNS)].to_numpy(np.float64)).tobytes())
    digest.update(np.asarray(frame.index.as_unit("ns").asi8).tobytes())
    digest.update(str(frame.index.tz).encode())
    return digest.hexdigest()


def _date_numbers(stamps: pd.DatetimeIndex) -> np.ndarray:
    """backtrader date numbers (float days, UTC) for a DatetimeIndex."""
    utc = stamps.tz_convert("UTC").tz_localize(None) if stamps.tz is not None else stamps
    micros = np.asarray(utc.as_unit("us").asi8, dtype=np.float64)
    return micros / _US_PER_DAY + _EPOCH_DAYNUM


def bar_timestamps(data: bt.AbstractDataBase, numbers: np.ndarray) -> pd.DatetimeIndex:
    """Real bar timestamps from backtrader date numbers, in the feed's timezone when it has one."""
    micros = np.rint((np.asarray(numbers, dtype=np.float64) - _EPOCH_DAYNUM) * _US_PER_DAY / 1000.0) * 1000
    stamps = pd.DatetimeIndex(pd.to_datetime(micros.astype(np.int64), unit="us"))
    tz = getattr(data, "_tz", None)
    tz = tz.tz if isinstance(tz, _BacktraderTz) else tz
    if tz is not None:
        stamps = stamps.tz_localize("UTC").tz_convert(tz)
    return stamps


def _timeframe(stamps: pd.DatetimeIndex) -> tuple[int, int]:
    """backtrader (timeframe, compression) from the median bar interval."""
    if len(stamps) < 2:
        return bt.TimeFrame.Days, 1
    step = pd.Timedelta(np.median(np.diff(stamps.asi8)), unit=stamps.unit)
    seconds = step.total_seconds()
    if seconds >= 86_400 * 28:
        return bt.TimeFrame.Months, 1
    if seconds >= 86_400 * 7:
        return bt.TimeFrame.Weeks, 1
    if seconds >= 86_400:
        return bt.TimeFrame.Days, 1
    if seconds >= 60:
        return bt.TimeFrame.Minutes, max(1, int(round(seconds / 60)))
    return bt.TimeFrame.Seconds, max(1, int(round(seconds)))


class _BacktraderTz(datetime.tzinfo):
    """Any tzinfo (zoneinfo, fixed offset) with the pytz-style ``localize`` that backtrader calls."""

    def __init__(self, tz: datetime.tzinfo) -> None:
        self.tz = tz

    def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta | None:
        return self.tz.utcoffset(None if dt is None else dt.replace(tzinfo=None))

    def dst(self, dt: datetime.datetime | None) -> datetime.timedelta | None:
        return self.tz.dst(None if dt is None else dt.replace(tzinfo=None))

    def tzname(self, dt: datetime.datetime | None) -> str | None:
        return self.tz.tzname(None if dt is None else dt.replace(tzinfo=None))

    def fromutc(self, dt: datetime.datetime) -> datetime.datetime:
        return self.tz.fromutc(dt.replace(tzinfo=self.tz)).replace(tzinfo=self)

    def localize(self, dt: datetime.datetime) -> datetime.datetime:
        return dt.replace(tzinfo=self)


class KronosFeed(bt.feed.DataBase):
    """A validated OHLCV frame (from :func:`read_ohlcv`) as a backtrader feed with an ``amount`` line.

    Params:
      - ``dataname``: the frame; timestamps stay exact and keep their timezone (``tz`` is set from it)

    Lines: the standard OHLCV lines plus ``amount`` (turnover, the sixth Kronos feature).
    """

    lines = ("amount",)

    def __init__(self) -> None:
        frame = self.p.dataname
        if not isinstance(frame, pd.DataFrame) or not isinstance(frame.index, pd.DatetimeIndex):
            raise DataError("KronosFeed needs a DataFrame from read_ohlcv (DatetimeIndex + OHLCV columns)")
        self._frame = prepare_ohlcv(frame, name=self.p.name or "feed")
        check_time_order(frame.index, name=f"{self.p.name or 'feed'} timestamps")
        self._stamps = pd.DatetimeIndex(frame.index)

    def start(self) -> None:
        super().start()
        self._values = self._frame.to_numpy(np.float64)
        self._numbers = _date_numbers(self._stamps)
        self._row = -1

    def _load(self) -> bool:
        self._row += 1
        if self._row >= len(self._values):
            return False
        o, h, lo, c, v, a = self._values[self._row]
        lines = self.lines
        lines.datetime[0] = self._numbers[self._row]
        lines.open[0], lines.high[0], lines.low[0], lines.close[0] = o, h, lo, c
        lines.volume[0], lines.amount[0] = v, a
        lines.openinterest[0] = 0.0
        return True


def make_feed(frame: pd.DataFrame, *, name: str = "data") -> KronosFeed:
    """A :class:`KronosFeed` with timeframe, compression and timezone taken from the frame."""
    stamps = pd.DatetimeIndex(frame.index)
    timeframe, compression = _timeframe(stamps)
    tz = None if stamps.tz is None else _BacktraderTz(stamps.tz)
    return KronosFeed(dataname=frame, name=name, tz=tz, timeframe=timeframe, compression=compression)
