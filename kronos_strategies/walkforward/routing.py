"""Serving forecasts fold by fold: a window goes to the model of the fold its last bar belongs to."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import pandas as pd

from kronos_model.data import frame_timestamps
from kronos_model.errors import LookaheadError
from kronos_model.forecast import Forecast

from ..cache import ForecastCache
from ..errors import ConfigError
from ..forecasting import ForecastSpec, FrameWindows, SeriesWindows, cached_forecasts
from .folds import Fold
from .store import WALKFORWARD_VERSION

__all__ = ["ModelSlot", "WalkForwardPredictor", "serve"]


class ModelSlot:
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

    def forecast_series(
        self, series: Any, ends: Sequence[int], pred_len: int, **kwargs: Any
    ) -> list[Forecast]:
        """Windows sliced from a prepared series (``KronosPredictor.forecast_series``), loaded on first use."""
        return self.predictor.forecast_series(series, ends, pred_len, **kwargs)


def serve(
    slot: ModelSlot,
    windows: Sequence[pd.DataFrame] | SeriesWindows,
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
        self, base: Any, folds: Sequence[Fold], slots: Sequence[ModelSlot], cache: ForecastCache | None
    ) -> None:
        self.base = base
        self.folds = list(folds)
        self.slots = list(slots)
        self.cache = cache
        self.max_context = getattr(base, "max_context", None)
        self.device = getattr(base, "device", "cpu")
        self.computed = 0  # windows that reached a model through this object
        self.precomputed = 0  # traded windows computed by this run's fold precompute (then served from cache)
        self._base_slot = ModelSlot(base.fingerprint, lambda: base)
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
        anchor: bool = False,
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
        spec = ForecastSpec(
            pred_len=pred_len,
            sample_count=sample_count,
            T=T,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            anchor=anchor,
        )
        last_times = [frame_timestamps(w)[-1] for w in windows]
        return self._serve(
            last_times, lambda members: FrameWindows([windows[j] for j in members]), spec, batch_size
        )

    def forecast_series(
        self,
        series: Any,
        ends: Sequence[int],
        pred_len: int,
        *,
        lookback: int,
        sample_count: int = 20,
        T: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.9,
        seed: int | None = None,
        batch_size: int | None = 64,
        anchor: bool = False,
        **_: Any,
    ) -> list[Forecast]:
        """Windows sliced from a prepared series, grouped by serving model (``forecast_series`` API)."""
        spec = ForecastSpec(
            pred_len=pred_len,
            sample_count=sample_count,
            T=T,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            anchor=anchor,
        )
        last_times = [series.times[int(end) - 1] for end in ends]
        return self._serve(
            last_times,
            lambda members: SeriesWindows(series, [ends[j] for j in members], lookback),
            spec,
            batch_size,
        )

    def _serve(
        self, last_times: list[pd.Timestamp], windows_of: Callable, spec: ForecastSpec, batch_size
    ) -> list:
        """Group windows by the fold serving their last bar; each group through its model and the cache."""
        groups: dict[int, list[int]] = {}
        for j, last in enumerate(last_times):
            groups.setdefault(self.fold_for(last), []).append(j)
        out: list[Forecast | None] = [None] * len(last_times)
        for k, members in groups.items():
            slot = self._base_slot if k < 0 else self.slots[k]
            got, n = serve(slot, windows_of(members), spec, self.cache, batch_size or 64)
            self.computed += n
            for j, forecast in zip(members, got, strict=True):
                out[j] = forecast
        return out  # type: ignore[return-value]

    def forecast(self, df: pd.DataFrame, pred_len: int, **kwargs: Any) -> Forecast:
        """One window (``KronosPredictor.forecast`` API)."""
        return self.forecast_batch([df], pred_len, **kwargs)[0]
