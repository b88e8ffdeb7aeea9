"""What a paper / sandbox / live session runs with: the ``paper:`` block plus the ``broker:`` block.

``kronos-bt paper cfg.yaml`` reads the very file a backtest reads (strategy, indicator, model shared), and
``broker:`` means the same in both: in ``paper`` mode the session's backtrader broker starts with
``broker.cash`` and charges ``broker.commission`` and ``broker.slippage`` exactly as the backtest's broker
(:func:`kronos_strategies.strategy.configure_broker` sets up both). In ``sandbox`` / ``live`` the exchange
account holds the cash and charges its own fees, so those keys are not used (and the command says so).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kronos_strategies.config import BacktestConfig, BrokerConfig
from kronos_strategies.config.blocks import check_broker
from kronos_strategies.config.paper import MODES, PaperSection
from kronos_strategies.errors import ConfigError

__all__ = ["BROKER_KEYS", "MODES", "PaperConfig", "PaperSection", "paper_config"]

# the broker: keys; PaperConfig has a field for each (a test keeps them in step)
BROKER_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BrokerConfig))


@dataclass
class PaperConfig(PaperSection):
    """The ``paper:`` block plus the ``broker:`` block's keys (same defaults and rules as the backtest's)."""

    cash: float = BrokerConfig.cash  # paper mode starting cash (quote currency)
    commission: float = BrokerConfig.commission  # paper mode fee, a fraction of traded value
    slippage: float = BrokerConfig.slippage  # paper mode slippage, a fraction of the price

    def __post_init__(self) -> None:
        """The ``paper:`` rules, then the ``broker:`` rules of the backtest (same keys, same messages)."""
        super().__post_init__()
        for name in BROKER_KEYS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(
                    f"'broker.{name}' must be of type float, got {value!r} ({type(value).__name__})"
                )
        check_broker(self.broker)

    @property
    def broker(self) -> BrokerConfig:
        """The ``broker:`` block this session trades with."""
        return BrokerConfig(**{name: float(getattr(self, name)) for name in BROKER_KEYS})

    def broker_line(self) -> str:
        """One line saying where the session's cash and costs come from (printed before it starts)."""
        if self.mode == "paper":
            return (f"paper broker as in the backtest: cash {self.cash:,.2f}, commission {self.commission:.4%}, "
                    f"slippage {self.slippage:.4%} (broker: block)")  # fmt: skip
        return (
            f"{self.mode}: cash is the exchange account's balance and fees are the exchange's own; "
            "broker.cash / commission / slippage apply to backtests and paper mode only"
        )


def paper_config(cfg: BacktestConfig, **overrides: Any) -> PaperConfig:
    """The PaperConfig of a loaded backtest config: its ``paper:`` block and its ``broker:`` block, whole."""
    section = cfg.paper
    if section is None:
        where = cfg.source or "the config"
        raise ConfigError(
            f"{where} has no 'paper:' section (symbol, exchange, timeframe, mode, journal, ...)"
        )
    values = dataclasses.asdict(section) | dataclasses.asdict(cfg.broker)
    values |= {k: v for k, v in overrides.items() if v is not None}
    return PaperConfig(**values)
