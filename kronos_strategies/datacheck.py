"""Data problems that are not errors (gaps, missing volume, ignored columns, zero-volume bars) as warnings.

Each warning has a kind, a count, the first timestamp and one line for the summary; the runner prints
them and records them in the run's manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from kronos_model.data import FEATURE_COLUMNS

from .reporting import bar_calendar

__all__ = ["DataWarning", "data_warnings", "find_gaps"]


@dataclass(frozen=True)
class DataWarning:
    """One kind of data problem: how often it occurs and where first."""

    kind: str
    count: int
    first: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping for the manifest."""
        return asdict(self)


def find_gaps(index: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(last bar before, first bar after) of each gap the data's calendar does not explain.

    24/7 data: any interval over 1.5 bars. Intraday weekday sessions (FX): over 1.5 bars and 6 hours once
    weekends are taken out. Daily and exchange-hours data: 3 or more weekdays without a bar (holidays are 1-2 days).
    """
    index = pd.DatetimeIndex(index)
    if len(index) < 3:
        return []
    kind, step = bar_calendar(index)
    before, after = index[:-1], index[1:]
    span = after - before
    if kind == "24/7" or step > pd.Timedelta(days=1.5):
        gap = span > 1.5 * step
    else:
        d0 = before.tz_localize(None).normalize().to_numpy().astype("datetime64[D]")
        d1 = after.tz_localize(None).normalize().to_numpy().astype("datetime64[D]")
        if kind == "weekdays":  # Saturdays and Sundays from d0 through d1 do not count
            weekend_days = (d1 - d0).astype(int) + 1 - np.busday_count(d0, d1 + 1)
            weekday_time = span - pd.to_timedelta(weekend_days, unit="D")
            gap = weekday_time > max(1.5 * step, pd.Timedelta(hours=6))  # brokers open Sunday or Monday
        else:
            gap = np.busday_count(d0 + 1, d1) >= 3
    where = np.flatnonzero(np.asarray(gap))
    return [(before[i], after[i]) for i in where]


def data_warnings(frame: pd.DataFrame, *, label: str = "data") -> list[DataWarning]:
    """Warnings about bars that load fine but may mislead: gaps, no volume, ignored columns, zero volume."""
    out: list[DataWarning] = []
    first = str(frame.index[0]) if len(frame) else ""
    gaps = find_gaps(frame.index)
    if gaps:
        a, b = gaps[0]
        out.append(DataWarning(
            "gaps", len(gaps), str(a),
            f"{label} has {len(gaps)} gap(s) longer than its calendar explains, first {a} .. {b}; "
            "forecasts across a gap treat it as one bar",
        ))  # fmt: skip
    columns = frame.attrs.get("source_columns")
    if columns is not None:
        if "volume" not in columns:
            out.append(DataWarning(
                "no_volume", len(frame), first,
                f"{label} has no volume column: volume and amount are 0 for all {len(frame)} bars",
            ))  # fmt: skip
        ignored = [c for c in columns if c not in FEATURE_COLUMNS]
        if ignored:
            adj = " (prices are the raw open/high/low/close; adjust them first if splits or dividends matter)"
            out.append(DataWarning(
                "ignored_columns", len(ignored), first,
                f"{label}: column(s) {ignored} are ignored{adj if any('adj' in c for c in ignored) else ''}",
            ))  # fmt: skip
        if "volume" in columns:
            zero = np.flatnonzero(frame["volume"].to_numpy() == 0)
            if len(zero):
                out.append(DataWarning(
                    "zero_volume", len(zero), str(frame.index[zero[0]]),
                    f"{label} has {len(zero)} bar(s) with volume 0, first {frame.index[zero[0]]}",
                ))  # fmt: skip
    return out
