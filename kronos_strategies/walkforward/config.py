"""The ``finetune:`` block (when to refit, on which bars, how hard to train) and the indicator's forecast spec."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from kronos_model.errors import KronosError
from kronos_model.training import FinetuneConfig

from ..config import BacktestConfig, register_section
from ..errors import ConfigError
from ..forecasting import ForecastSpec
from .folds import period_starts

__all__ = ["DEFAULT_CACHE", "SignalSpec", "WalkForwardConfig", "check_walkforward"]

DEFAULT_CACHE = ".kronos_cache"


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


def check_walkforward(section: WalkForwardConfig, cfg: BacktestConfig) -> None:
    """Cross-field rules of the ``finetune:`` block (step 2 of config validation)."""
    s = section
    if isinstance(s.every, int) and s.every < 1:
        raise ConfigError(f"'finetune.every' must be >= 1 bar or a period alias like 'Q', got {s.every}")
    if isinstance(s.every, str):
        period_starts(pd.DatetimeIndex([pd.Timestamp("2000-01-03")]), s.every)
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


register_section("finetune", WalkForwardConfig, check_walkforward)
