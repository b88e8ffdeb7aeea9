"""What walk-forward forecasts at each bar (:class:`SignalSpec`) and where it keeps folds; the ``finetune:``
block itself (:class:`WalkForwardConfig`) is part of the backtest config (:mod:`kronos_strategies.config.finetune`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import BacktestConfig
from ..config.finetune import WalkForwardConfig
from ..forecasting import ANCHOR_DEFAULT, ForecastSpec

__all__ = ["DEFAULT_CACHE", "SignalSpec", "WalkForwardConfig"]

DEFAULT_CACHE = ".kronos_cache"


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
    anchor: bool = ANCHOR_DEFAULT
    every: int = 1  # forecast every N bars (the indicator holds values in between)
    batch_size: int = 64

    @classmethod
    def from_config(cls, cfg: BacktestConfig) -> SignalSpec:
        """The spec of a backtest's indicator, ``indicator.params`` overrides included (as the runner applies)."""
        return cls(**{name: cfg.indicator.resolved(name) for name in cls.__dataclass_fields__})

    def forecast_spec(self) -> ForecastSpec:
        """The forecast made at each bar: the same spec (and so the same cache keys) as the indicator's."""
        return ForecastSpec(pred_len=self.pred_len, sample_count=self.sample_count, T=self.T, top_k=self.top_k,
                            top_p=self.top_p, seed=self.seed, anchor=self.anchor)  # fmt: skip
