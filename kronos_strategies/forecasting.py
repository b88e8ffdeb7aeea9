"""The one forecast path of the backtrader side: a frozen :class:`ForecastSpec` says what changes a forecast
(and so makes its cache key), and :func:`cached_forecasts` looks windows up in the cache, sends the misses
to the model in batches and stores them. The indicator, walk-forward, sweeps and paper trading all call it,
so a window is keyed the same way wherever it is forecast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from kronos_model.errors import ConfigError, LookaheadError
from kronos_model.forecast import Forecast

from .cache import ForecastCache, forecast_key

__all__ = ["ForecastSpec", "Forecaster", "cached_forecasts"]


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
    """

    pred_len: int
    sample_count: int = 16
    T: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    seed: int | None = 0

    def __post_init__(self) -> None:
        if int(self.pred_len) < 1:
            raise ConfigError(f"pred_len must be >= 1 bar, got {self.pred_len}")
        if int(self.sample_count) < 1:
            raise ConfigError(f"sample_count must be >= 1, got {self.sample_count}")

    def sampling(self) -> dict[str, object]:
        """The sampling arguments as they enter the cache key (the layout of cache version 2)."""
        return {
            "pred_len": self.pred_len,
            "sample_count": self.sample_count,
            "T": self.T,
            "top_k": self.top_k,
            "top_p": self.top_p,
        }

    def key(self, fingerprint: str, window: pd.DataFrame) -> str | None:
        """Cache key of ``window`` forecast by the model ``fingerprint``; None when unseeded."""
        if self.seed is None:
            return None
        return forecast_key(fingerprint, window.to_numpy(), window.index, self.sampling(), self.seed)

    def predictor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``forecast_batch`` besides the windows and ``pred_len``."""
        fields = dataclasses.asdict(self)
        fields.pop("pred_len")
        return fields


def cached_forecasts(
    predictor: Forecaster,
    windows: Sequence[pd.DataFrame],
    spec: ForecastSpec,
    cache: ForecastCache | None = None,
    *,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
    compute: Callable[[list[int]], list[Forecast]] | None = None,
) -> tuple[list[Forecast], int]:
    """Forecasts of ``windows`` (cache first, misses computed in batches and stored); also the count computed.

    ``on_batch(n)`` is called after each computed batch of ``n`` windows (progress bars). ``compute(indices)``,
    when given, forecasts a batch of missed windows by their indices (e.g. through ``forecast_series`` on a
    prepared series) instead of ``predictor.forecast_batch``. Every forecast must end its history at its
    window's last bar, or a :class:`LookaheadError` is raised.
    """
    keys: list[str | None] = [None] * len(windows)
    out: list[Forecast | None] = [None] * len(windows)
    if cache is not None:
        for j, window in enumerate(windows):
            keys[j] = spec.key(predictor.fingerprint, window)
            out[j] = cache.get(keys[j]) if keys[j] is not None else None
    todo = [j for j, forecast in enumerate(out) if forecast is None]
    kwargs = spec.predictor_kwargs()
    for first in range(0, len(todo), batch_size):
        chunk = todo[first : first + batch_size]
        if compute is not None:
            computed = compute(chunk)
        else:
            computed = predictor.forecast_batch(
                [windows[j] for j in chunk], spec.pred_len, batch_size=batch_size, **kwargs
            )
        for j, forecast in zip(chunk, computed, strict=True):
            out[j] = forecast
            if cache is not None and keys[j] is not None:
                cache.put(keys[j], forecast)
        if on_batch is not None:
            on_batch(len(chunk))
    for window, forecast in zip(windows, out, strict=True):
        end = forecast.history_end if forecast is not None else None
        if end is not None and pd.Timestamp(end) != window.index[-1]:
            raise LookaheadError(f"forecast ends its history at {end}, the window at {window.index[-1]}")
    return out, len(todo)  # type: ignore[return-value]
