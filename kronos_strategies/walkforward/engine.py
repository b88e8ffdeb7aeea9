"""The walk-forward precompute: train (or load) every fold's model in order and forecast its traded bars.

Fold k's model is fine-tuned with :func:`kronos_model.training.finetune` on bars strictly before its first
traded bar only, starting from the base checkpoint or from fold k-1. Fold checkpoints and forecasts are
content-addressed (:mod:`.store`), so re-running with other trading parameters trains nothing and an
interrupted run resumes after its last finished fold. The precompute runs ahead of the backtest and fills
the forecast cache; the returned :class:`~.routing.WalkForwardPredictor` then stands in for the predictor
of any ``KronosSignal``, so indicators and strategies need no change.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_model.errors import InsufficientHistoryError
from kronos_model.forecast import Forecast
from kronos_model.training import FinetuneConfig, finetune

from ..cache import ForecastCache
from ..config import BacktestConfig
from ..feeds import read_ohlcv
from .config import DEFAULT_CACHE, SignalSpec, WalkForwardConfig
from .folds import Fold, make_schedule
from .routing import ModelSlot, WalkForwardPredictor, serve
from .store import (
    FOLD_FILE,
    fold_key,
    load_fold,
    pair_predictor,
    store_fold,
    training_bars,
    training_fingerprint,
)  # fmt: skip

__all__ = [
    "FoldOutcome", "WalkForwardResult", "fold_root", "prepare_backtest", "run_walkforward", "train_fold",
    "walkforward_for",
]  # fmt: skip

log = logging.getLogger(__name__)


def train_fold(
    fold: Fold, key: str, start: Any, train: pd.DataFrame | dict[str, pd.DataFrame], ft: FinetuneConfig,
    settings: WalkForwardConfig, directory: Path,
) -> tuple[ModelSlot, dict[str, Any]]:  # fmt: skip
    """Fine-tune a copy of ``start`` on the fold's training bars (a frame, or a universe's frames by asset),
    store it, and return its slot and record."""
    model, tokenizer = copy.deepcopy(start.model), copy.deepcopy(start.tokenizer)
    began = time.perf_counter()
    result = finetune((model, tokenizer), train, ft, train_tokenizer=settings.train_tokenizer)
    predictor = pair_predictor(result.model, result.tokenizer, start)
    tok = result.tokenizer_result
    record = {
        "key": key,
        "fold": fold.as_dict(),
        "fingerprint": predictor.fingerprint,
        "train_bars": training_bars(train),
        "data_fingerprint": training_fingerprint(train),
        "val_loss": result.predictor_result.best_val_loss,
        "val_loss_first_epoch": result.predictor_result.history[0]["val_loss"],
        "tokenizer_val_loss": None if tok is None else tok.best_val_loss,
        "steps": result.predictor_result.record["steps"] + (0 if tok is None else tok.record["steps"]),
        "cutoff": result.predictor_result.record["cutoff"],
        "train_seconds": round(time.perf_counter() - began, 3),
    }
    store_fold(result, record, directory)
    return ModelSlot(predictor.fingerprint, lambda: predictor), record


@dataclass
class FoldOutcome:
    """One fold after the precompute: its model record, whether it was trained now, its forecasts."""

    fold: Fold
    record: dict[str, Any]
    trained: bool
    positions: np.ndarray  # bar positions forecast in this fold
    forecasts: list[Forecast] = field(repr=False)
    base_forecasts: list[Forecast] | None = field(repr=False)
    forecast_seconds: float = 0.0
    base_seconds: float = 0.0
    computed: int = 0  # windows that reached a model in this run (fine-tuned + base)
    traded_computed: int = 0  # of them, traded windows forecast by the fold's model (not the base comparison)


@dataclass
class WalkForwardResult:
    """The precompute's outcome: the routing predictor, one :class:`FoldOutcome` per fold, total seconds."""

    predictor: WalkForwardPredictor
    folds: list[FoldOutcome]
    settings: WalkForwardConfig
    spec: SignalSpec
    seconds: float

    @property
    def trained(self) -> int:
        """Folds trained in this run (0 on a fully cached re-run)."""
        return sum(f.trained for f in self.folds)


def _windows(bars: pd.DataFrame, positions: np.ndarray, lookback: int) -> list[pd.DataFrame]:
    """The indicator's windows: the ``lookback`` bars ending at each position (nothing after it)."""
    if len(positions) and positions[0] < lookback - 1:
        raise InsufficientHistoryError(
            f"bar {bars.index[positions[0]]} has fewer than lookback={lookback} bars"
        )
    return [bars.iloc[p - lookback + 1 : p + 1] for p in positions.tolist()]


def run_walkforward(
    predictor: Any,
    bars: pd.DataFrame,
    folds: Sequence[Fold],
    settings: WalkForwardConfig,
    spec: SignalSpec,
    *,
    fold_dir: str | os.PathLike[str],
    cache: ForecastCache | None,
    progress: bool = False,
) -> WalkForwardResult:
    """Train (or load) every fold's model in order and forecast its bars, fold by fold.

    ``bars`` are validated OHLCV bars (``read_ohlcv``) holding the training history and the traded bars;
    ``folds`` come from :func:`make_schedule` on ``bars.index``. Forecast bars are every ``spec.every``-th
    traded bar counted from the first fold's first bar, as the indicator places them.
    """
    from tqdm.auto import tqdm

    began = time.perf_counter()
    bars = read_ohlcv(bars, name="walk-forward bars")
    if not folds:
        raise InsufficientHistoryError("the walk-forward schedule has no folds")
    device = str(predictor.device)
    n_val = settings.validation_bars(spec.lookback, spec.pred_len)
    root, forecast = Path(fold_dir), spec.forecast_spec()
    base_slot = ModelSlot(predictor.fingerprint, lambda: predictor)
    slots: list[ModelSlot] = []
    outcomes: list[FoldOutcome] = []
    origin = folds[0].first
    prev_key = None
    bar = tqdm(folds, desc="walk-forward", unit="fold", disable=not progress, leave=False)
    for fold in bar:
        fresh = settings.init == "base" or prev_key is None
        if n_val and fold.first - n_val <= fold.train_start:
            raise InsufficientHistoryError(
                f"fold {fold.index} has {fold.first - fold.train_start} training bars, not more than the "
                f"{n_val} validation bars; use more history, a later dates.start or a smaller finetune.val_bars"
            )
        val_start = bars.index[fold.first - n_val] if n_val else None
        ft = settings.finetune_config(
            lookback=spec.lookback, horizon=spec.pred_len, device=device, val_start=val_start
        )
        key = fold_key(predictor.fingerprint if fresh else prev_key, bars.iloc[fold.train_start : fold.first], ft,
                       train_tokenizer=settings.train_tokenizer, init="base" if fresh else "previous")  # fmt: skip
        directory = root / key
        if (directory / FOLD_FILE).is_file():
            record = json.loads((directory / FOLD_FILE).read_text())
            slot = ModelSlot(
                record["fingerprint"],
                lambda d=directory, f=record["fingerprint"]: load_fold(d, f, predictor),
            )
            trained = False
        else:
            start = predictor if fresh else slots[-1].predictor
            train = bars.iloc[fold.train_start : fold.first]
            slot, record = train_fold(fold, key, start, train, ft, settings, directory)
            trained = True
        positions = np.arange(fold.first, fold.stop)
        positions = positions[(positions - origin) % spec.every == 0]
        windows = _windows(bars, positions, spec.lookback)
        t0 = time.perf_counter()
        forecasts, n = serve(slot, windows, forecast, cache, spec.batch_size)
        t1 = time.perf_counter()
        base, n_base = (None, 0)
        if settings.compare_base:
            base, n_base = serve(base_slot, windows, forecast, cache, spec.batch_size)
        outcome = FoldOutcome(fold, record, trained, positions, forecasts, base, round(t1 - t0, 3),
                              round(time.perf_counter() - t1, 3), n + n_base, n)  # fmt: skip
        outcomes.append(outcome)
        slots.append(slot)
        prev_key = key
        _log_fold(outcome, len(folds), bar if progress else None)
    bar.close()
    router = WalkForwardPredictor(predictor, folds, slots, cache)
    return WalkForwardResult(router, outcomes, settings, spec, round(time.perf_counter() - began, 3))


def _log_fold(o: FoldOutcome, total: int, bar: Any) -> None:
    """One progress line per fold (through tqdm when a bar is shown, else the logger)."""
    f, r = o.fold, o.record
    val = r.get("val_loss")
    how = f"trained {r['train_seconds']:.1f} s" if o.trained else "cached"
    line = (
        f"fold {f.index + 1}/{total}: train {f.train_from.date()}..{f.train_to.date()} ({r['train_bars']} bars, "
        f"val loss {'n/a' if val is None else f'{val:.4f}'}, {how}); trade {f.trade_from.date()}..{f.trade_to.date()} "
        f"({len(o.positions)} forecasts, {o.computed} computed, {o.forecast_seconds + o.base_seconds:.1f} s)"
    )
    if bar is not None:
        bar.write(line)
    log.info(line)


def fold_root(cfg: BacktestConfig) -> Path:
    """Where the fold checkpoints of ``cfg`` live: ``finetune.cache_dir``, else ``<indicator.cache_dir>/walkforward``."""
    settings: WalkForwardConfig = cfg.finetune
    if settings.cache_dir:
        return Path(settings.cache_dir)
    return Path(cfg.indicator.cache_dir or DEFAULT_CACHE) / "walkforward"


def walkforward_for(
    cfg: BacktestConfig, predictor: Any, bars: pd.DataFrame, start: object, end: object
) -> WalkForwardResult:
    """Train (or load) and forecast every fold of the ``finetune:`` block of ``cfg`` (sweeps precompute this)."""
    settings: WalkForwardConfig = cfg.finetune
    spec = SignalSpec.from_config(cfg)
    folds = make_schedule(bars.index, start, end, every=settings.every, window=settings.window)
    cache = ForecastCache(cfg.indicator.cache_dir) if cfg.indicator.cache_dir else None
    return run_walkforward(predictor, bars, folds, settings, spec, fold_dir=fold_root(cfg), cache=cache,
                           progress=settings.progress and cfg.engine.progress)  # fmt: skip


def prepare_backtest(
    cfg: BacktestConfig,
    predictor: Any,
    bars: pd.DataFrame,
    start: object,
    end: object,
    *,
    report_dir: str | os.PathLike[str] | None = None,
) -> WalkForwardPredictor:
    """Run the ``finetune:`` block of ``cfg`` ahead of its backtest and return the predictor to trade with.

    ``bars`` are all bars of the data (training history included), ``start`` / ``end`` the first and last
    traded bars. The walk-forward report is written into ``report_dir`` when given.
    """
    result = walkforward_for(cfg, predictor, bars, start, end)
    if report_dir is not None:
        from .report import write_walkforward_report

        write_walkforward_report(result, bars, report_dir)
    result.predictor.precomputed = sum(f.traded_computed for f in result.folds)
    return result.predictor
