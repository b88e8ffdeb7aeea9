"""Walk-forward fine-tuning: refit Kronos fold by fold and serve every traded bar with its own fold's model.

The schedule cuts the traded bars into folds (a refit every N bars or at each calendar period). Fold k's
model is fine-tuned with :func:`kronos_model.training.finetune` on bars strictly before its first traded
bar only, starting from the base checkpoint or from fold k-1. Fold checkpoints (``save_pretrained``
directories) and forecasts are content-addressed: a fold's key hashes the base fingerprint (or the
previous fold's key), the training bars, the fine-tuning settings and the seed, so re-running with other
trading parameters trains nothing and an interrupted run resumes after its last finished fold.

The precompute runs ahead of the backtest and fills the forecast cache; :class:`WalkForwardPredictor`
then stands in for the predictor of any ``KronosSignal``: it routes each window to the model of the fold
its last bar belongs to, so indicators and strategies need no change.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_model.data import frame_timestamps
from kronos_model.errors import CheckpointError, InsufficientHistoryError, KronosError, LookaheadError
from kronos_model.forecast import Forecast
from kronos_model.training import FinetuneConfig, finetune

from .cache import ForecastCache
from .config import BacktestConfig, register_section
from .errors import ConfigError
from .feeds import as_index_time, data_fingerprint, read_ohlcv
from .forecasting import ForecastSpec, cached_forecasts

__all__ = [
    "Fold",
    "FoldOutcome",
    "SignalSpec",
    "WalkForwardConfig",
    "WalkForwardPredictor",
    "WalkForwardResult",
    "fold_key",
    "make_schedule",
    "prepare_backtest",
    "run_walkforward",
    "walkforward_for",
]

log = logging.getLogger(__name__)

FOLD_FILE = "fold.json"
WALKFORWARD_VERSION = 1  # bump when the meaning of a fold key or the stored layout changes
DEFAULT_CACHE = ".kronos_cache"


# ----------------------------------------------------------------------------------------------------
# settings


@dataclass
class WalkForwardConfig:
    """The ``finetune:`` block: when to refit, on which bars, starting from where, and how hard to train."""

    every: int | str = 63  # refit every N traded bars, or at each calendar period: "Q", "M", "W", "Y"
    window: int | str = 504  # training bars before each fold's first traded bar, or "expanding"
    init: str = "previous"  # "base": every fold starts from the base checkpoint; "previous": from fold k-1
    train_tokenizer: bool = False  # also fine-tune the tokenizer (before the predictor)
    epochs: int = 1
    steps: int | None = 32  # cap on optimiser steps per fold; None: `epochs` passes over the windows
    lr: float = 5e-5
    batch_size: int = 16
    lookback: int | None = None  # bars of context per training window; None: the indicator's lookback
    horizon: int | None = None  # bars after the context per training window; None: indicator.pred_len
    val_bars: int | None = (
        None  # latest training bars held out for the validation loss; None: 16 windows' worth
    )
    max_val_windows: int = 64
    stride: int = 1
    seed: int = 0
    compare_base: bool = True  # also forecast each fold's bars with the frozen base model (for the report)
    cache_dir: str | None = None  # fold checkpoints; None: <indicator.cache_dir>/walkforward
    progress: bool = True

    def finetune_config(
        self, *, lookback: int, horizon: int, device: str, val_start: pd.Timestamp | None = None
    ) -> FinetuneConfig:
        """One fold's :class:`FinetuneConfig` (``lookback`` / ``horizon`` fill the None defaults).

        ``val_start`` is the fold's first validation bar; None with ``val_bars > 0`` only builds the settings.
        """
        return FinetuneConfig(
            lookback=self.lookback or lookback,
            horizon=self.horizon if self.horizon is not None else horizon,
            batch_size=self.batch_size,
            epochs=self.epochs,
            max_steps=self.steps,
            lr=self.lr,
            val_fraction=0.0,
            val_start=None if val_start is None else str(val_start),
            max_val_windows=self.max_val_windows,
            stride=self.stride,
            seed=self.seed,
            device=device,
            verbose=False,
        )

    def validation_bars(self, lookback: int, horizon: int) -> int:
        """Training bars held out at the end of each fold's window for its validation loss."""
        if self.val_bars is not None:
            return self.val_bars
        return (self.lookback or lookback) + (self.horizon if self.horizon is not None else horizon) + 16


@dataclass(frozen=True)
class SignalSpec:
    """What the indicator forecasts at each bar (window, horizon, cadence, batching and the forecast itself)."""

    lookback: int = 256
    pred_len: int = 5
    horizon: int = 5
    sample_count: int = 16
    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    seed: int | None = 0
    every: int = 1  # forecast every N bars (the indicator holds values in between)
    batch_size: int = 64

    @classmethod
    def from_config(cls, cfg: BacktestConfig) -> SignalSpec:
        """The spec of a backtest's indicator, ``indicator.params`` overrides included (as the runner applies)."""
        ind = cfg.indicator
        names = [f for f in cls.__dataclass_fields__]
        values = {name: getattr(ind, name) for name in names}
        values.update({k: v for k, v in ind.params.items() if k in names})
        return cls(**values)

    def forecast_spec(self) -> ForecastSpec:
        """The forecast made at each bar: the same spec (and so the same cache keys) as the indicator's."""
        return ForecastSpec(pred_len=self.pred_len, sample_count=self.sample_count, T=self.T, top_k=self.top_k,
                            top_p=self.top_p, seed=self.seed)  # fmt: skip


def _check_section(section: WalkForwardConfig, cfg: BacktestConfig) -> None:
    """Cross-field rules of the ``finetune:`` block (step 2 of config validation)."""
    s = section
    if isinstance(s.every, int) and s.every < 1:
        raise ConfigError(f"'finetune.every' must be >= 1 bar or a period alias like 'Q', got {s.every}")
    if isinstance(s.every, str):
        _period_starts(pd.DatetimeIndex([pd.Timestamp("2000-01-03")]), s.every)
    if isinstance(s.window, str) and s.window != "expanding":
        raise ConfigError(f"'finetune.window' must be a number of bars or 'expanding', got {s.window!r}")
    if s.init not in ("base", "previous"):
        raise ConfigError(f"'finetune.init' must be 'base' or 'previous', got {s.init!r}")
    if SignalSpec.from_config(cfg).seed is None:
        raise ConfigError(
            "walk-forward needs a seeded indicator: set 'indicator.seed' (forecasts are cached)"
        )
    try:
        ft = s.finetune_config(lookback=cfg.indicator.lookback, horizon=cfg.indicator.pred_len, device="cpu")
    except KronosError as exc:
        raise ConfigError(f"'finetune' block: {exc}") from None
    if s.val_bars is not None and s.val_bars < 0:
        raise ConfigError(f"'finetune.val_bars' must be >= 0 (0: no validation), got {s.val_bars}")
    one = ft.lookback + ft.horizon + 1
    val = s.validation_bars(cfg.indicator.lookback, cfg.indicator.pred_len)
    if 0 < val < one:
        raise ConfigError(f"'finetune.val_bars' is {val} but one validation window needs {one} bars")
    if isinstance(s.window, int) and s.window < one + val:
        raise ConfigError(
            f"'finetune.window' is {s.window} bars but one training window (lookback + horizon + 1 = {one}) plus "
            f"{val} validation bars need {one + val}; raise finetune.window or lower finetune.lookback / val_bars"
        )


register_section("finetune", WalkForwardConfig, _check_section)


# ----------------------------------------------------------------------------------------------------
# schedule


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


def _period_starts(local: pd.DatetimeIndex, every: str) -> np.ndarray:
    """Positions where a new calendar period (pandas period alias) begins; the first bar always does."""
    try:
        periods = local.to_period(every)
    except (ValueError, TypeError):
        raise ConfigError(
            f"'finetune.every' {every!r} is neither a number of bars nor a pandas period alias ('Q', 'M', 'W', 'Y')"
        ) from None
    codes = periods.asi8
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
        firsts = lo + _period_starts(local, every)
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


# ----------------------------------------------------------------------------------------------------
# models and forecasts


class _Slot:
    """A model serving some bars: its fingerprint (known without loading it) and the predictor, loaded lazily."""

    def __init__(self, fingerprint: str, load: Callable[[], Any]) -> None:
        self.fingerprint = fingerprint
        self._load = load
        self._predictor: Any = None

    @property
    def predictor(self) -> Any:
        if self._predictor is None:
            self._predictor = self._load()
        return self._predictor

    def forecast_batch(self, df_list: Sequence[pd.DataFrame], pred_len: int, **kwargs: Any) -> list[Forecast]:
        """The slot's model forecasts (loaded on first use: cache hits never load it)."""
        return self.predictor.forecast_batch(df_list, pred_len, **kwargs)


def _serve(
    slot: _Slot,
    windows: Sequence[pd.DataFrame],
    spec: ForecastSpec,
    cache: ForecastCache | None,
    batch_size: int,
) -> tuple[list[Forecast], int]:
    """Forecasts of ``windows`` by one model, from the cache where present; returns them and the count computed."""
    forecasts, served = cached_forecasts(slot, windows, spec, cache, batch_size=batch_size)
    return forecasts, served.computed


class WalkForwardPredictor:
    """Stands in for a ``KronosPredictor``: a window is forecast by the model of the fold its last bar is in.

    Bars before the first fold are served by the base model. Forecasts are read from / written to the
    forecast cache under the serving model's own fingerprint. ``fingerprint`` covers the base model,
    the fold boundaries and every fold model, so caches keyed on it never mix two schedules.
    """

    name = "walkforward"

    def __init__(
        self, base: Any, folds: Sequence[Fold], slots: Sequence[_Slot], cache: ForecastCache | None
    ) -> None:
        self.base = base
        self.folds = list(folds)
        self.slots = list(slots)
        self.cache = cache
        self.max_context = getattr(base, "max_context", None)
        self.device = getattr(base, "device", "cpu")
        self.computed = 0  # windows that reached a model through this object
        self.precomputed = 0  # traded windows computed by this run's fold precompute (then served from cache)
        self._base_slot = _Slot(base.fingerprint, lambda: base)
        self._firsts = pd.DatetimeIndex([f.trade_from for f in self.folds])

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over the base fingerprint, the fold boundaries and the fold models' fingerprints."""
        digest = hashlib.sha256(f"walkforward-v{WALKFORWARD_VERSION}|{self.base.fingerprint}".encode())
        for fold, slot in zip(self.folds, self.slots, strict=True):
            digest.update(f"|{fold.trade_from.isoformat()}|{slot.fingerprint}".encode())
        return digest.hexdigest()

    def fold_for(self, end: pd.Timestamp) -> int:
        """Index of the fold serving a window whose last bar is ``end`` (-1: before the first fold, base model)."""
        k = int(self._firsts.searchsorted(end, side="right")) - 1
        if k >= 0 and self.folds[k].train_to >= end:
            raise LookaheadError(f"fold {k} trained through {self.folds[k].train_to}, cannot serve bar {end}")
        return k

    def forecast_batch(
        self,
        df_list: Sequence[pd.DataFrame],
        pred_len: int,
        *,
        x_timestamp_list: Sequence[Any] | None = None,
        y_timestamp_list: Sequence[Any] | None = None,
        sample_count: int = 20,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        seed: int | None = None,
        batch_size: int | None = 64,
        **_: Any,
    ) -> list[Forecast]:
        """Forecasts for windows of any folds, grouped by serving model and batched (``forecast_batch`` API)."""
        if y_timestamp_list is not None:
            raise ConfigError(
                "WalkForwardPredictor infers each window's future timestamps; drop y_timestamp_list"
            )
        xs = x_timestamp_list if x_timestamp_list is not None else [None] * len(df_list)
        windows = [
            df.set_axis(frame_timestamps(df, x)) if x is not None else df for df, x in zip(df_list, xs)
        ]
        groups: dict[int, list[int]] = {}
        for j, w in enumerate(windows):
            groups.setdefault(self.fold_for(frame_timestamps(w)[-1]), []).append(j)
        spec = ForecastSpec(
            pred_len=pred_len, sample_count=sample_count, T=T, top_k=top_k, top_p=top_p, seed=seed
        )
        out: list[Forecast | None] = [None] * len(windows)
        for k, members in groups.items():
            slot = self._base_slot if k < 0 else self.slots[k]
            got, n = _serve(slot, [windows[j] for j in members], spec, self.cache, batch_size or 64)
            self.computed += n
            for j, forecast in zip(members, got, strict=True):
                out[j] = forecast
        return out  # type: ignore[return-value]

    def forecast(self, df: pd.DataFrame, pred_len: int, **kwargs: Any) -> Forecast:
        """One window (``KronosPredictor.forecast`` API)."""
        return self.forecast_batch([df], pred_len, **kwargs)[0]


# ----------------------------------------------------------------------------------------------------
# fold training and storage


def fold_key(
    start_from: str, train: pd.DataFrame, ft: FinetuneConfig, *, train_tokenizer: bool, init: str
) -> str:
    """sha256 key of one fold model: starting weights (fingerprint or previous key), bars, settings, seed."""
    settings = {k: v for k, v in asdict(ft).items() if k != "verbose"}
    head = {"v": WALKFORWARD_VERSION, "from": start_from, "init": init, "tokenizer": bool(train_tokenizer),
            "finetune": settings, "data": data_fingerprint(train)}  # fmt: skip
    return hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode()).hexdigest()


def _pair_predictor(model: Any, tokenizer: Any, like: Any) -> Any:
    """A ``KronosPredictor`` over a module pair with the base predictor's device, context and clip."""
    from kronos_model import KronosPredictor

    return KronosPredictor(model, tokenizer, device=str(like.device), max_context=like.max_context,
                           clip=getattr(like, "clip", 5))  # fmt: skip


def load_fold(directory: Path, fingerprint: str, like: Any) -> Any:
    """Load a stored fold pair and check it is the model that was recorded."""
    from kronos_model import Kronos, KronosTokenizer

    predictor = _pair_predictor(
        Kronos.from_pretrained(directory / "predictor"),
        KronosTokenizer.from_pretrained(directory / "tokenizer"),
        like,
    )
    if predictor.fingerprint != fingerprint:
        raise CheckpointError(f"fold checkpoint {directory} does not match its record; delete the directory")
    return predictor


def _store_fold(result: Any, record: dict[str, Any], directory: Path) -> None:
    """Write the fold's pair and record into a temporary directory, then rename it into place (atomic)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{directory.name[:12]}-", dir=directory.parent))
    try:
        result.save(tmp)
        (tmp / FOLD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, directory)
    except OSError:
        if not (directory / FOLD_FILE).is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _train_fold(
    fold: Fold, key: str, start: Any, bars: pd.DataFrame, ft: FinetuneConfig, settings: WalkForwardConfig,
    directory: Path,
) -> tuple[_Slot, dict[str, Any]]:  # fmt: skip
    """Fine-tune a copy of ``start`` on the fold's training bars, store it, and return its slot and record."""
    train = bars.iloc[fold.train_start : fold.first]
    model, tokenizer = copy.deepcopy(start.model), copy.deepcopy(start.tokenizer)
    began = time.perf_counter()
    result = finetune((model, tokenizer), train, ft, train_tokenizer=settings.train_tokenizer)
    predictor = _pair_predictor(result.model, result.tokenizer, start)
    tok = result.tokenizer_result
    record = {
        "key": key,
        "fold": fold.as_dict(),
        "fingerprint": predictor.fingerprint,
        "train_bars": len(train),
        "data_fingerprint": data_fingerprint(train),
        "val_loss": result.predictor_result.best_val_loss,
        "val_loss_first_epoch": result.predictor_result.history[0]["val_loss"],
        "tokenizer_val_loss": None if tok is None else tok.best_val_loss,
        "steps": result.predictor_result.record["steps"] + (0 if tok is None else tok.record["steps"]),
        "cutoff": result.predictor_result.record["cutoff"],
        "train_seconds": round(time.perf_counter() - began, 3),
    }
    _store_fold(result, record, directory)
    return _Slot(predictor.fingerprint, lambda: predictor), record


# ----------------------------------------------------------------------------------------------------
# the precompute


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
    base_slot = _Slot(predictor.fingerprint, lambda: predictor)
    slots: list[_Slot] = []
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
            slot = _Slot(
                record["fingerprint"],
                lambda d=directory, f=record["fingerprint"]: load_fold(d, f, predictor),
            )
            trained = False
        else:
            start = predictor if fresh else slots[-1].predictor
            slot, record = _train_fold(fold, key, start, bars, ft, settings, directory)
            trained = True
        positions = np.arange(fold.first, fold.stop)
        positions = positions[(positions - origin) % spec.every == 0]
        windows = _windows(bars, positions, spec.lookback)
        t0 = time.perf_counter()
        forecasts, n = _serve(slot, windows, forecast, cache, spec.batch_size)
        t1 = time.perf_counter()
        base, n_base = (None, 0)
        if settings.compare_base:
            base, n_base = _serve(base_slot, windows, forecast, cache, spec.batch_size)
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


# ----------------------------------------------------------------------------------------------------
# backtest hook


def walkforward_for(
    cfg: BacktestConfig, predictor: Any, bars: pd.DataFrame, start: object, end: object
) -> WalkForwardResult:
    """Train (or load) and forecast every fold of the ``finetune:`` block of ``cfg`` (sweeps precompute this)."""
    settings: WalkForwardConfig = cfg.sections["finetune"]
    spec = SignalSpec.from_config(cfg)
    folds = make_schedule(bars.index, start, end, every=settings.every, window=settings.window)
    cache_root = Path(cfg.indicator.cache_dir or DEFAULT_CACHE)
    fold_dir = Path(settings.cache_dir) if settings.cache_dir else cache_root / "walkforward"
    cache = ForecastCache(cfg.indicator.cache_dir) if cfg.indicator.cache_dir else None
    return run_walkforward(predictor, bars, folds, settings, spec, fold_dir=fold_dir, cache=cache,
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
        from .walkforward_report import write_walkforward_report

        write_walkforward_report(result, bars, report_dir)
    result.predictor.precomputed = sum(f.traded_computed for f in result.folds)
    return result.predictor
