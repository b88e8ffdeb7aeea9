"""The ``finetune:`` block (walk-forward fine-tuning): when to refit, on which bars, how hard to train."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kronos_model.errors import KronosError

from ..errors import ConfigError
from .blocks import IndicatorConfig

if TYPE_CHECKING:
    import pandas as pd

    from kronos_model.training import FinetuneConfig

__all__ = ["WalkForwardConfig", "check_finetune", "to_periods"]


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
        from kronos_model.training import FinetuneConfig  # torch: only once walk-forward is asked for

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


def to_periods(local: pd.DatetimeIndex, every: str) -> pd.PeriodIndex:
    """``local`` bars as calendar periods of ``every`` (a pandas alias); an unknown alias names the key."""
    try:
        return local.to_period(every)
    except (ValueError, TypeError):
        raise ConfigError(
            f"'finetune.every' {every!r} is neither a number of bars nor a pandas period alias ('Q', 'M', 'W', 'Y')"
        ) from None


def check_finetune(s: WalkForwardConfig, ind: IndicatorConfig) -> None:
    """Cross-field rules of the ``finetune:`` block against the indicator it fine-tunes for."""
    if isinstance(s.every, int) and s.every < 1:
        raise ConfigError(f"'finetune.every' must be >= 1 bar or a period alias like 'Q', got {s.every}")
    if isinstance(s.every, str):
        import pandas as pd

        to_periods(pd.DatetimeIndex([pd.Timestamp("2000-01-03")]), s.every)
    if isinstance(s.window, str) and s.window != "expanding":
        raise ConfigError(f"'finetune.window' must be a number of bars or 'expanding', got {s.window!r}")
    if s.init not in ("base", "previous"):
        raise ConfigError(f"'finetune.init' must be 'base' or 'previous', got {s.init!r}")
    if ind.resolved("seed") is None:
        raise ConfigError(
            "walk-forward needs a seeded indicator: set 'indicator.seed' (forecasts are cached)"
        )
    try:
        ft = s.finetune_config(lookback=ind.lookback, horizon=ind.pred_len, device="cpu")
    except KronosError as exc:
        raise ConfigError(f"'finetune' block: {exc}") from None
    if s.val_bars is not None and s.val_bars < 0:
        raise ConfigError(f"'finetune.val_bars' must be >= 0 (0: no validation), got {s.val_bars}")
    one = ft.lookback + ft.horizon + 1
    val = s.validation_bars(ind.lookback, ind.pred_len)
    if 0 < val < one:
        raise ConfigError(f"'finetune.val_bars' is {val} but one validation window needs {one} bars")
    if isinstance(s.window, int) and s.window < one + val:
        raise ConfigError(
            f"'finetune.window' is {s.window} bars but one training window (lookback + horizon + 1 = {one}) plus "
            f"{val} validation bars need {one + val}; raise finetune.window or lower finetune.lookback / val_bars"
        )
