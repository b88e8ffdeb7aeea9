"""The ``paper:`` section of a backtest YAML (exchange, symbol, timeframe, mode, journal, emulator URL).

Registered with the backtest config loader, so ``kronos-bt paper cfg.yaml`` reads the very file a
backtest reads: the strategy, indicator and model sections are shared, cash and fees come from
``broker:``. :class:`PaperConfig` is the section plus those broker settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kronos_strategies.config import BacktestConfig
from kronos_strategies.config.paper import MODES, PaperSection
from kronos_strategies.errors import ConfigError

__all__ = ["MODES", "PaperConfig", "PaperSection", "paper_config"]


@dataclass
class PaperConfig(PaperSection):
    """The ``paper:`` section plus the paper broker's cash and costs (``broker:`` in the YAML)."""

    cash: float = 10_000.0  # paper mode starting cash (quote currency)
    commission: float = 0.001  # paper mode fee rate
    slippage: float = 0.0  # paper mode slippage, a fraction of the price

    def __post_init__(self) -> None:
        """Section checks plus the broker numbers."""
        super().__post_init__()
        if not isinstance(self.cash, int | float) or self.cash <= 0:
            raise ConfigError(f"broker.cash must be a positive number, got {self.cash!r}")
        for name in ("commission", "slippage"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < 0.1:
                raise ConfigError(f"broker.{name} must be a fraction in [0, 0.1), got {value!r}")


def paper_config(cfg: BacktestConfig, **overrides: Any) -> PaperConfig:
    """The PaperConfig of a loaded backtest config (its ``paper:`` section and ``broker:`` costs)."""
    section = cfg.paper
    if section is None:
        where = cfg.source or "the config"
        raise ConfigError(
            f"{where} has no 'paper:' section (symbol, exchange, timeframe, mode, journal, ...)"
        )
    values = dataclasses.asdict(section) | {"cash": cfg.broker.cash, "commission": cfg.broker.commission,
                                            "slippage": cfg.broker.slippage}  # fmt: skip
    values |= {k: v for k, v in overrides.items() if v is not None}
    return PaperConfig(**values)
