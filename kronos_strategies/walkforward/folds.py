"""The walk-forward schedule: cut the traded bars into folds, each trained on the bars strictly before it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from kronos_model.errors import InsufficientHistoryError

from ..config.finetune import to_periods
from ..feeds import as_index_time

__all__ = ["Fold", "make_schedule", "period_starts"]


@dataclass(frozen=True)
class Fold:
    """One refit: train on bars ``[train_start, first)``, trade bars ``[first, stop)`` (positions in the bars)."""

    index: int
    train_start: int
    first: int
    stop: int
    train_from: pd.Timestamp
    train_to: pd.Timestamp  # last training bar, strictly before trade_from
    trade_from: pd.Timestamp
    trade_to: pd.Timestamp  # last traded bar of the fold

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly description (timestamps as ISO strings)."""
        return {k: (str(v) if isinstance(v, pd.Timestamp) else v) for k, v in asdict(self).items()}


def period_starts(local: pd.DatetimeIndex, every: str) -> np.ndarray:
    """Positions where a new calendar period (pandas period alias) begins; the first bar always does."""
    codes = to_periods(local, every).asi8
    return np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])


def make_schedule(
    times: pd.DatetimeIndex,
    start: object,
    end: object | None = None,
    *,
    every: int | str = 63,
    window: int | str = "expanding",
) -> list[Fold]:
    """Folds over the bars ``times[start .. end]``: a refit every ``every`` bars (or calendar period).

    Fold k trades ``[first_k, first_{k+1})`` and trains on the ``window`` bars just before ``first_k``
    (all earlier bars when ``window="expanding"``). Raises ``InsufficientHistoryError`` when a fixed
    window reaches before the first bar, or when there is nothing to trade.
    """
    times = pd.DatetimeIndex(times)
    lo = int(times.searchsorted(as_index_time(start, times), side="left"))
    hi = len(times) if end is None else int(times.searchsorted(as_index_time(end, times), side="right"))
    if hi <= lo:
        raise InsufficientHistoryError(f"no bars to trade between {start} and {end}")
    if isinstance(every, str):
        local = times[lo:hi].tz_localize(None) if times.tz is not None else times[lo:hi]
        firsts = lo + period_starts(local, every)
    else:
        firsts = np.arange(lo, hi, int(every))
    stops = np.r_[firsts[1:], hi]
    folds = []
    for k, (first, stop) in enumerate(zip(firsts.tolist(), stops.tolist(), strict=True)):
        train_start = 0 if window == "expanding" else first - int(window)
        if train_start < 0 or first == 0:
            raise InsufficientHistoryError(
                f"fold {k} (first traded bar {times[first]}) needs {window} training bars before it but the data "
                f"has {first}; use data starting earlier, a later dates.start or a smaller finetune.window"
            )
        folds.append(Fold(k, train_start, first, stop, times[train_start], times[first - 1], times[first],
                          times[stop - 1]))  # fmt: skip
    return folds
