"""Exceptions of the backtrader/exchange side; all derive from kronos_model's KronosError."""

from __future__ import annotations

from kronos_model.errors import KronosError, LookaheadError

__all__ = [
    "ConfigError",
    "ExchangeError",
    "KronosError",
    "LookaheadError",
    "OrderRejectedError",
    "TemporaryExchangeError",
]


class ConfigError(KronosError, ValueError):
    """A YAML backtest or a parameter is invalid; the message names the key and what is expected."""


class ExchangeError(KronosError):
    """An exchange request failed; see the subclasses for whether it is retried."""


class TemporaryExchangeError(ExchangeError):
    """Network, timeout, rate-limit or unavailable: may have happened; reconcile, back off and retry."""


class OrderRejectedError(ExchangeError):
    """The exchange refused the order (funds, limits, invalid): not retried; the strategy is told why."""
