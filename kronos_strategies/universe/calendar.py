"""Align a universe on the union of its timestamps, never filling a missing bar.

Policy (tested in tests/universe/test_alignment.py):
- the portfolio steps through the union of every asset's bar times;
- an asset with no bar at t has no forecast at t and is not traded at t (its windows are cut from its own
  bars only, so nothing is forward-filled into a window);
- an asset may start late (IPO) and is ranked once it has ``min_history`` bars of its own;
- an asset whose bars stop before the others' is delisted: the strategy closes it at its last close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_model.errors import DataError, InsufficientHistoryError

from ..feeds import as_index_time, slice_with_warmup

__all__ = ["AlignedUniverse", "align_universe"]


@dataclass
class AlignedUniverse:
    """Each asset's own bars plus the union calendar and the [bars x assets] tables built on it."""

    frames: dict[str, pd.DataFrame]  # each asset's bars: warm-up + trading period, no filling
    index: pd.DatetimeIndex  # union of all assets' bar times
    close: pd.DataFrame  # [union bars, assets], NaN where an asset has no bar
    eligible: pd.DataFrame  # bool: has a bar at t and at least min_history bars up to t
    position: pd.DataFrame  # int: the row of t in the asset's own frame, -1 where it has no bar
    start: pd.Timestamp  # first union bar that may trade
    last_bar: dict[str, pd.Timestamp]  # each asset's last bar (before the union's end: delisted)

    @property
    def names(self) -> list[str]:
        """Asset names in column order."""
        return list(self.frames)

    @property
    def delisted(self) -> list[str]:
        """Assets whose bars stop before the last union bar."""
        return [n for n, t in self.last_bar.items() if t < self.index[-1]]


def align_universe(
    frames: dict[str, pd.DataFrame],
    *,
    start: object | None,
    end: object | None,
    lookback: int,
    min_history: int | None = None,
) -> AlignedUniverse:
    """Slice each asset to ``[start - warm-up, end]`` and build the union calendar and its tables."""
    need = max(lookback, min_history or lookback)
    _check_timezones(frames)
    tz = next(iter(frames.values())).index.tz
    sliced: dict[str, pd.DataFrame] = {}
    for name, frame in frames.items():
        if tz is not None and str(frame.index.tz) != str(tz):  # one clock: the first asset's timezone
            frame = frame.set_axis(frame.index.tz_convert(tz))
        try:
            part, _ = slice_with_warmup(frame, start, end, warmup=need - 1)
        except InsufficientHistoryError as exc:
            raise InsufficientHistoryError(f"universe asset {name!r}: {exc}") from None
        if len(part) < need:
            raise InsufficientHistoryError(
                f"universe asset {name!r} has {len(part)} bars up to dates.end; it needs {need} "
                "(indicator.lookback / universe.min_history) before it can be ranked: drop it or extend the dates"
            )
        sliced[name] = part
    index = pd.DatetimeIndex(sorted(set().union(*(f.index for f in sliced.values()))), name="timestamp")
    close = pd.DataFrame({n: f["close"] for n, f in sliced.items()}).reindex(index)
    position = pd.DataFrame(
        {n: pd.Series(np.arange(len(f)), index=f.index).reindex(index).fillna(-1).astype(int) for n, f in sliced.items()}
    )  # fmt: skip
    eligible = position >= need - 1
    first = index[0] if start is None else index[index.searchsorted(as_index_time(start, index))]
    first_ranked = eligible.any(axis=1).idxmax()
    trade_start = max(first, first_ranked)
    return AlignedUniverse(
        frames=sliced,
        index=index,
        close=close,
        eligible=eligible,
        position=position,
        start=trade_start,
        last_bar={n: f.index[-1] for n, f in sliced.items()},
    )


def _check_timezones(frames: dict[str, pd.DataFrame]) -> None:
    """All assets naive or all timezone-aware (aware ones are compared in UTC by pandas)."""
    aware = {n: f.index.tz is not None for n, f in frames.items()}
    if len(set(aware.values())) > 1:
        naive = next(n for n, a in aware.items() if not a)
        raise DataError(
            f"universe asset {naive!r} has naive timestamps while others have a timezone: "
            "set its 'tz' (or universe.tz for files) so all assets share one clock"
        )
