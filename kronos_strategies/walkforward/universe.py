"""Walk-forward fine-tuning of a universe: one model per fold, trained on every asset's bars before the fold.

The folds cut the union calendar of all assets' bars (history included), as :func:`.folds.make_schedule` cuts
one asset's. Fold k's model is fine-tuned on each asset's own bars in ``[train_from, trade_from)`` — by time,
so no asset's bar at or after the fold's first traded bar reaches it, whichever asset it belongs to — and it
forecasts every universe window whose last bar falls in the fold. Fold checkpoints share the single-asset
store (content-addressed: the key hashes the starting weights, every asset's training bars and the settings),
so a re-run with other trading parameters trains nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..config import BacktestConfig
from .config import WalkForwardConfig
from .engine import fold_root, train_fold
from .folds import Fold, make_schedule
from .routing import ModelSlot
from .store import FOLD_FILE, fold_key, load_fold

__all__ = ["UniverseFold", "fold_training_frames", "run_universe_walkforward", "universe_schedule"]


@dataclass
class UniverseFold:
    """One fold of a universe walk-forward: its schedule entry, model record and union rows it forecast."""

    fold: Fold
    record: dict[str, Any]
    trained: bool
    rows: tuple[int, int]  # [lo, hi) rows of the aligned universe's calendar
    assets: list[str]  # assets it was trained on (those with enough bars before the fold)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary for the run's metrics."""
        return {**self.fold.as_dict(), "trained": self.trained, "assets": self.assets, "key": self.record["key"],
                "train_bars": self.record["train_bars"], "val_loss": self.record.get("val_loss")}  # fmt: skip


def _one_clock(frames: dict[str, pd.DataFrame], tz: Any) -> dict[str, pd.DataFrame]:
    """Every frame on the timezone ``tz`` (the aligned universe's), naive frames unchanged."""
    if tz is None:
        return frames
    return {
        n: f.set_axis(f.index.tz_convert(tz)) if str(f.index.tz) != str(tz) else f for n, f in frames.items()
    }


def universe_schedule(
    frames: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp, settings: WalkForwardConfig
) -> tuple[pd.DatetimeIndex, list[Fold]]:
    """The union calendar of all assets' bars up to ``end`` and the folds trading ``[start, end]`` on it."""
    times = pd.DatetimeIndex(sorted(set().union(*(f.index[f.index <= end] for f in frames.values()))))
    return times, make_schedule(times, start, end, every=settings.every, window=settings.window)


def fold_training_frames(
    frames: dict[str, pd.DataFrame], times: pd.DatetimeIndex, fold: Fold, min_bars: int
) -> dict[str, pd.DataFrame]:
    """Each asset's bars in ``[times[train_start], times[first])`` (strictly before the fold), if it has ``min_bars``."""
    lo, hi = times[fold.train_start], times[fold.first]
    out = {}
    for name, frame in frames.items():
        part = frame[(frame.index >= lo) & (frame.index < hi)]
        if len(part) >= min_bars:
            out[name] = part
    return out


def run_universe_walkforward(
    cfg: BacktestConfig, frames: dict[str, pd.DataFrame], forecaster: Any
) -> list[UniverseFold]:
    """Train (or load) every fold's model in order and forecast the fold's universe windows with it.

    ``frames`` are every asset's validated bars, history included; ``forecaster`` is the run's
    :class:`~kronos_strategies.universe.signals.UniverseForecaster` (its table is filled fold by fold).
    """
    from kronos_model.errors import InsufficientHistoryError

    settings: WalkForwardConfig = cfg.finetune
    universe, base = forecaster.universe, forecaster.predictor
    frames = _one_clock(frames, universe.index.tz)
    times, folds = universe_schedule(frames, universe.start, universe.index[-1], settings)
    ind = cfg.indicator
    n_val = settings.validation_bars(ind.lookback, ind.pred_len)
    root, device = fold_root(cfg), str(base.device)
    out: list[UniverseFold] = []
    prev: tuple[str, ModelSlot] | None = None
    for fold in folds:
        fresh = settings.init == "base" or prev is None
        if n_val and fold.first - n_val <= fold.train_start:
            raise InsufficientHistoryError(
                f"walk-forward fold {fold.index} has {fold.first - fold.train_start} training bars on the universe "
                f"calendar, not more than the {n_val} validation bars; use more history or a smaller finetune.val_bars"
            )
        ft = settings.finetune_config(lookback=ind.lookback, horizon=ind.pred_len, device=device,
                                      val_start=times[fold.first - n_val] if n_val else None)  # fmt: skip
        train = fold_training_frames(frames, times, fold, ft.lookback + ft.horizon + 1)
        if not train:
            raise InsufficientHistoryError(
                f"walk-forward fold {fold.index}: no asset has {ft.lookback + ft.horizon + 1} bars before "
                f"{fold.trade_from}; use more history or a later dates.start"
            )
        start_from = base.fingerprint if fresh else prev[0]  # type: ignore[index]
        key = fold_key(start_from, train, ft, train_tokenizer=settings.train_tokenizer,
                       init="base" if fresh else "previous")  # fmt: skip
        directory = root / key
        if (directory / FOLD_FILE).is_file():
            record = json.loads((directory / FOLD_FILE).read_text())
            slot = ModelSlot(
                record["fingerprint"], lambda d=directory, f=record["fingerprint"]: load_fold(d, f, base)
            )
            trained = False
        else:
            start = base if fresh else prev[1].predictor  # type: ignore[index]
            slot, record = train_fold(fold, key, start, train, ft, settings, directory)
            trained = True
        rows = (int(universe.index.searchsorted(fold.trade_from)),
                int(universe.index.searchsorted(fold.trade_to, side="right")))  # fmt: skip
        began = time.perf_counter()
        forecaster.predictor = slot
        try:
            forecaster.precompute(rows=rows)
        finally:
            forecaster.predictor = base
        record = dict(record, forecast_seconds=round(time.perf_counter() - began, 3))
        out.append(UniverseFold(fold, record, trained, rows, sorted(train)))
        prev = (key, slot)
    return out
