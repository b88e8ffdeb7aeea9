"""The one forecast path of the backtrader side: a frozen :class:`ForecastSpec` says what changes a forecast
(and so makes its cache key), and :func:`cached_forecasts` looks windows up in the cache, sends the misses
to the model in batches and stores them. The indicator, walk-forward, sweeps and paper trading all call it,
so a window is keyed the same way wherever it is forecast.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from kronos_model.errors import ConfigError, LookaheadError
from kronos_model.forecast import Forecast
from kronos_model.series import PreparedSeries

from .cache import ForecastCache, forecast_key

__all__ = [
    "ANCHOR_DEFAULT",
    "ForecastSpec",
    "Forecaster",
    "FrameWindows",
    "SeriesWindows",
    "ServeStats",
    "cached_forecasts",
]


# Start every path from the last observed bar (KronosPredictor(anchor=True)) unless told otherwise: chosen on
# the validation span of the bundled model (2013-07 .. 2014-12), never the test period; numbers in its card.
ANCHOR_DEFAULT = True


@runtime_checkable
class Forecaster(Protocol):
    """What the indicator, walk-forward and paper trading need from a predictor (``KronosPredictor`` is one)."""

    @property
    def fingerprint(self) -> str:
        """Hash of the model's config and weights: part of every cache key."""
        ...

    def forecast_batch(self, df_list: Sequence[pd.DataFrame], pred_len: int, **kwargs: Any) -> list[Forecast]:
        """Forecasts of many windows (same sampling arguments) in one call."""
        ...


@dataclass(frozen=True)
class ForecastSpec:
    """Everything besides the model and the window that changes a seeded forecast.

    ``seed=None`` means unseeded: such forecasts are never cached (they would not be reproducible).
    ``anchor=True`` shifts the paths so step 0 reconstructs the last observed bar (``KronosPredictor``'s
    ``anchor``); it enters the key only when on, so unanchored keys are those of cache version 2.
    """

    pred_len: int
    sample_count: int = 16
    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    seed: int | None = 0
    anchor: bool = ANCHOR_DEFAULT

    def __post_init__(self) -> None:
        if int(self.pred_len) < 1:
            raise ConfigError(f"pred_len must be >= 1 bar, got {self.pred_len}")
        if int(self.sample_count) < 1:
            raise ConfigError(f"sample_count must be >= 1, got {self.sample_count}")

    def sampling(self) -> dict[str, object]:
        """The sampling arguments as they enter the cache key (the layout of cache version 2, plus anchor)."""
        args: dict[str, object] = {
            "pred_len": self.pred_len,
            "sample_count": self.sample_count,
            "T": self.T,
            "top_k": self.top_k,
            "top_p": self.top_p,
        }
        if self.anchor:  # off: the key stays the one stored before anchoring existed
            args["anchor"] = True
        return args

    def key(self, fingerprint: str, window: pd.DataFrame) -> str | None:
        """Cache key of ``window`` forecast by the model ``fingerprint``; None when unseeded."""
        return self.key_arrays(fingerprint, window.to_numpy(), window.index)

    def key_arrays(self, fingerprint: str, values: np.ndarray, times: pd.DatetimeIndex) -> str | None:
        """Cache key of the window with feature ``values`` [lookback, n_features] at ``times``."""
        if self.seed is None:
            return None
        return forecast_key(fingerprint, values, times, self.sampling(), self.seed)

    def predictor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``forecast_batch`` besides the windows and ``pred_len``."""
        fields = dataclasses.asdict(self)
        fields.pop("pred_len")
        if not self.anchor:  # stand-in forecasters written before anchoring need not accept it
            fields.pop("anchor")
        return fields


@dataclass(frozen=True)
class ServeStats:
    """What one :func:`cached_forecasts` call did: windows computed, model batches, seconds in the model."""

    computed: int = 0
    batches: int = 0
    seconds: float = 0.0


class FrameWindows:
    """Windows given as DataFrames (one validated per window by ``forecast_batch``)."""

    def __init__(self, frames: Sequence[pd.DataFrame]) -> None:
        self.frames = list(frames)

    def __len__(self) -> int:
        return len(self.frames)

    def key(self, spec: ForecastSpec, fingerprint: str, j: int) -> str | None:
        return spec.key(fingerprint, self.frames[j])

    def last_time(self, j: int) -> pd.Timestamp:
        return self.frames[j].index[-1]

    def forecast(
        self, predictor: Forecaster, js: list[int], spec: ForecastSpec, batch_size: int
    ) -> list[Forecast]:
        frames = [self.frames[j] for j in js]
        return predictor.forecast_batch(
            frames, spec.pred_len, batch_size=batch_size, **spec.predictor_kwargs()
        )


class SeriesWindows:
    """Windows cut from one prepared series: bars ``max(0, end - lookback):end`` for each ``end`` (array
    slices, validated once); forecast through ``forecast_series`` when the predictor has it."""

    def __init__(self, series: PreparedSeries, ends: Sequence[int], lookback: int) -> None:
        self.series, self.ends, self.lookback = series, list(ends), int(lookback)

    def __len__(self) -> int:
        return len(self.ends)

    def _bounds(self, j: int) -> tuple[int, int]:
        end = self.ends[j]
        return max(0, end - self.lookback), end

    def key(self, spec: ForecastSpec, fingerprint: str, j: int) -> str | None:
        start, end = self._bounds(j)
        return spec.key_arrays(fingerprint, self.series.values[start:end], self.series.times[start:end])

    def last_time(self, j: int) -> pd.Timestamp:
        return self.series.times[self.ends[j] - 1]

    def forecast(
        self, predictor: Forecaster, js: list[int], spec: ForecastSpec, batch_size: int
    ) -> list[Forecast]:
        kwargs = spec.predictor_kwargs()
        if callable(getattr(predictor, "forecast_series", None)):
            ends = [self.ends[j] for j in js]
            return predictor.forecast_series(  # type: ignore[attr-defined]
                self.series, ends, spec.pred_len, lookback=self.lookback, batch_size=batch_size, **kwargs
            )
        frames = [self.series.frame(*self._bounds(j)) for j in js]
        return predictor.forecast_batch(frames, spec.pred_len, batch_size=batch_size, **kwargs)


def cached_forecasts(
    predictor: Forecaster,
    windows: Sequence[pd.DataFrame] | FrameWindows | SeriesWindows,
    spec: ForecastSpec,
    cache: ForecastCache | None = None,
    *,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
    compute: Callable[[list[int]], list[Forecast]] | None = None,
) -> tuple[list[Forecast], ServeStats]:
    """Forecasts of ``windows`` (cache first, misses computed in batches and stored) and what it took.

    ``windows``: DataFrames, or a :class:`SeriesWindows` (slices of one prepared series). ``on_batch(n)`` is
    called after each computed batch of ``n`` windows (progress bars). ``compute(indices)``, when given,
    forecasts a batch of missed windows by their indices instead of the window set's own path. Every
    forecast must end its history at its window's last bar, or a :class:`LookaheadError` is raised.
    """
    if not isinstance(windows, FrameWindows | SeriesWindows):
        windows = FrameWindows(windows)
    n = len(windows)
    keys: list[str | None] = [None] * n
    out: list[Forecast | None] = [None] * n
    if cache is not None:
        for j in range(n):
            keys[j] = windows.key(spec, predictor.fingerprint, j)
            out[j] = cache.get(keys[j]) if keys[j] is not None else None
    todo = [j for j, forecast in enumerate(out) if forecast is None]
    batches, seconds = 0, 0.0
    for first in range(0, len(todo), batch_size):
        chunk = todo[first : first + batch_size]
        started = time.perf_counter()
        computed = (
            compute(chunk) if compute is not None else windows.forecast(predictor, chunk, spec, batch_size)
        )
        seconds += time.perf_counter() - started
        batches += 1
        for j, forecast in zip(chunk, computed, strict=True):
            out[j] = forecast
            if cache is not None and keys[j] is not None:
                cache.put(keys[j], forecast)
        if on_batch is not None:
            on_batch(len(chunk))
    for j, forecast in enumerate(out):
        end, last = forecast.history_end, windows.last_time(j)  # type: ignore[union-attr]
        if end is not None and pd.Timestamp(end) != last:
            raise LookaheadError(f"forecast ends its history at {end}, the window at {last}")
    return out, ServeStats(computed=len(todo), batches=batches, seconds=seconds)  # type: ignore[return-value]
