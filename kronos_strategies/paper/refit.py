"""Walk-forward refits during a paper session: train the next fold in the background, swap at a bar boundary.

Fold ``k`` begins ``k * finetune.every`` bars (by time) after the session's first processed bar. Once the
bar before that boundary is processed, the fold's model is fine-tuned in a thread on the ``finetune.window``
bars strictly before the boundary, through :func:`~kronos_strategies.walkforward.run_walkforward` (so fold
checkpoints share the walk-forward cache and a trained fold is never trained twice). Trading goes on with
the current model; when the thread is done the model behind the indicator's predictor is replaced between
two bars, and the journal gets a ``model_swap`` event naming the first bar the new model forecast.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from kronos_model.errors import KronosError, LookaheadError
from kronos_strategies.config import BacktestConfig
from kronos_strategies.errors import ConfigError
from kronos_strategies.feeds import bar_timestamps
from kronos_strategies.walkforward import (
    DEFAULT_CACHE,
    Fold,
    SignalSpec,
    WalkForwardConfig,
    load_fold,
    run_walkforward,
)

from .journal import Journal

__all__ = ["LiveRefitter", "SwappablePredictor", "live_refitter"]

log = logging.getLogger(__name__)

SWAP = "model_swap"


class SwappablePredictor:
    """Stands in for a KronosPredictor; the model behind it changes only between bars (see LiveRefitter)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def fingerprint(self) -> str:
        """The current model's fingerprint (forecast cache keys follow the swaps)."""
        return self.model.fingerprint

    @property
    def max_context(self) -> int | None:
        """The current model's context limit."""
        return getattr(self.model, "max_context", None)

    @property
    def device(self) -> Any:
        """The current model's device."""
        return self.model.device

    def forecast_batch(self, *args: Any, **kwargs: Any) -> list[Any]:
        """``KronosPredictor.forecast_batch`` of the current model."""
        return self.model.forecast_batch(*args, **kwargs)

    def forecast(self, *args: Any, **kwargs: Any) -> Any:
        """``KronosPredictor.forecast`` of the current model."""
        return self.model.forecast(*args, **kwargs)

    def forecast_series(self, *args: Any, **kwargs: Any) -> list[Any]:
        """``KronosPredictor.forecast_series`` of the current model (windows sliced from a prepared series)."""
        return self.model.forecast_series(*args, **kwargs)


@dataclasses.dataclass
class _Job:
    """One fold being trained (or loaded from the cache) in a background thread."""

    fold: int
    boundary: int  # open time (ms) of the fold's first bar; every training bar opens before it
    thread: threading.Thread | None = None
    model: Any = None
    record: dict[str, Any] | None = None
    trained: bool = False
    error: BaseException | None = None


class LiveRefitter:
    """Schedules, trains and swaps fold models for one paper session; the session calls :meth:`after_bar`."""

    def __init__(self, base: Any, settings: WalkForwardConfig, spec: SignalSpec, fold_dir: str | Path,
                 step_ms: int) -> None:  # fmt: skip
        if not isinstance(settings.every, int) or not isinstance(settings.window, int):
            raise ConfigError(
                "paper refits need 'finetune.every' and 'finetune.window' as numbers of bars "
                f"(got every={settings.every!r}, window={settings.window!r})"
            )
        self.base, self.spec, self.fold_dir, self.step = base, spec, Path(fold_dir), int(step_ms)
        self.settings = dataclasses.replace(settings, compare_base=False, progress=False)
        self.period = settings.every * self.step
        self.predictor = SwappablePredictor(base)
        self.fold = 0  # fold of the current model (0: the base model)
        self.trained = 0  # folds fine-tuned by this process (cache hits excluded)
        self.swaps: list[dict[str, Any]] = []  # journaled swaps of this process
        self._journal: Journal | None = None
        self._origin: int | None = None
        self._job: _Job | None = None
        self._staged: dict[str, Any] | None = None
        self._last_started = 0

    def history_bars(self) -> int:
        """Warm-up bars the live feed needs so a restarted session still holds every fold's training bars."""
        return int(self.settings.window) + int(self.settings.every)

    def resume(self, journal: Journal) -> None:
        """Attach the session journal; a restarted session gets back the model of its last journaled swap."""
        self._journal = journal
        origin = journal.meta("refit_origin")
        self._origin = None if origin is None else int(origin)
        swaps = journal.events(SWAP)
        if not swaps:
            return
        last = json.loads(swaps[-1]["message"])
        try:
            model = load_fold(self.fold_dir / last["key"], last["fingerprint"], self.base)
        except (OSError, KronosError) as exc:  # a deleted or foreign cache: trade on with the base model
            journal.event("refit_failed", f"cannot restore fold {last['fold']} ({exc}); using the base model")
            return
        self.predictor.model, self.fold = model, int(last["fold"])
        self._last_started = self.fold

    def after_bar(self, data: bt.feed.DataBase, ts: int) -> None:
        """After a processed bar: journal a swap that took effect on it, swap a finished fold, start a due one."""
        if self._staged is not None:  # this bar was the first one forecast by the swapped-in model
            self._journal_swap(self._staged, ts)
            self._staged = None
        if self._origin is None:
            self._origin = ts
            self._journal.set_meta("refit_origin", str(ts))
        job = self._job
        if job is not None and not job.thread.is_alive():
            self._job = None
            self._finish(job)
        due = (ts + self.step - self._origin) // self.period
        if self._job is None and due >= 1 and due > self._last_started:
            self._start(data, due)

    def close(self) -> None:
        """Wait for a running fold, so its checkpoint lands in the cache for the next session."""
        if self._job is not None and self._job.thread is not None:
            self._job.thread.join()

    # ------------------------------------------------------------------ internals

    def _start(self, data: bt.feed.DataBase, fold: int) -> None:
        """Train fold ``fold`` in a thread on the last ``window`` bars before its boundary."""
        self._last_started = fold
        boundary = self._origin + fold * self.period
        bars = _bars_before(data, boundary)
        window = int(self.settings.window)
        if len(bars) < window:
            self._journal.event(
                "refit_skipped", f"fold {fold}: {len(bars)} bars before {_iso(boundary)}, {window} needed"
            )
            return
        train = bars.iloc[-window:]
        start = self.base if self.settings.init == "base" else self.predictor.model
        job = _Job(fold, boundary)
        job.thread = threading.Thread(target=self._train, args=(job, start, train), name=f"kronos-refit-{fold}",
                                      daemon=True)  # fmt: skip
        self._job = job
        job.thread.start()
        log.info("refit of fold %d started on %d bars before %s", fold, len(train), _iso(boundary))

    def _train(self, job: _Job, start: Any, train: pd.DataFrame) -> None:
        """Thread body: train or load the fold model through the walk-forward fold cache."""
        try:
            boundary = pd.Timestamp(job.boundary, unit="ms")
            fold = Fold(
                job.fold, 0, len(train), len(train), train.index[0], train.index[-1], boundary, boundary
            )
            result = run_walkforward(start, train, [fold], self.settings, self.spec, fold_dir=self.fold_dir,
                                     cache=None)  # fmt: skip
            outcome = result.folds[0]
            job.model = result.predictor.slots[0].predictor  # a cached fold is loaded here, off the bar loop
            job.record, job.trained = outcome.record, outcome.trained
        except Exception as exc:  # reported at the next bar; trading goes on with the current model
            job.error = exc

    def _finish(self, job: _Job) -> None:
        """Swap a finished fold's model in (the next bar is its first), or journal why not."""
        if job.error is not None:
            self._journal.event("refit_failed", f"fold {job.fold}: {type(job.error).__name__}: {job.error}")
            return
        record = job.record
        if pd.Timestamp(record["fold"]["train_to"]) >= pd.Timestamp(job.boundary, unit="ms"):
            raise LookaheadError(
                f"fold {job.fold} trained through {record['fold']['train_to']}, past its boundary"
            )
        self.trained += int(job.trained)
        self.predictor.model, self.fold = job.model, job.fold
        self._staged = {
            "fold": job.fold,
            "key": record["key"],
            "fingerprint": record["fingerprint"],
            "boundary": job.boundary,
            "train_from": record["fold"]["train_from"],
            "train_to": record["fold"]["train_to"],
            "train_bars": record["train_bars"],
            "trained": job.trained,
        }

    def _journal_swap(self, staged: dict[str, Any], ts: int) -> None:
        """Write the swap with the first bar the new model forecast."""
        entry = staged | {"effective_bar": ts, "effective_time": _iso(ts)}
        self._journal.event(SWAP, json.dumps(entry, sort_keys=True))
        self.swaps.append(entry)
        log.info("model swap: fold %d (%s) from bar %s", entry["fold"], entry["fingerprint"][:12], _iso(ts))


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms").isoformat()


def _bars_before(data: bt.feed.DataBase, boundary: int) -> pd.DataFrame:
    """The feed's bars opening strictly before ``boundary`` (ms), as an OHLCV frame (naive UTC index)."""
    n = len(data)
    stamps = bar_timestamps(data, np.asarray(data.datetime.get(size=n), float))
    frame = pd.DataFrame(
        {name: np.asarray(getattr(data.lines, name).get(size=n), float)
         for name in ("open", "high", "low", "close", "volume")},
        index=stamps,
    )  # fmt: skip
    return frame[frame.index < pd.Timestamp(boundary, unit="ms")]


def live_refitter(cfg: BacktestConfig, base: Any, step_ms: int) -> LiveRefitter:
    """The refitter of a config's ``finetune:`` block (fold checkpoints where its walk-forward puts them)."""
    settings: WalkForwardConfig = cfg.finetune
    cache_root = Path(cfg.indicator.cache_dir or DEFAULT_CACHE)
    fold_dir = Path(settings.cache_dir) if settings.cache_dir else cache_root / "walkforward"
    return LiveRefitter(base, settings, SignalSpec.from_config(cfg), fold_dir, step_ms)
