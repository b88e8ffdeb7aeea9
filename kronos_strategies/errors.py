"""The project's exceptions, re-exported for the backtrader side; they are defined once, in
``kronos_model.errors`` (see the tree there)."""

from __future__ import annotations

from kronos_model.errors import (
    ConfigError,
    DataError,
    ExchangeAuthError,
    ExchangeError,
    KronosError,
    LiveTradingRefused,
    LookaheadError,
    OrderInFlightError,
    OrderNotFoundError,
    OrderRejectedError,
    RateLimitedError,
    TemporaryExchangeError,
)

__all__ = [
    "ConfigError",
    "DataError",
    "ExchangeAuthError",
    "ExchangeError",
    "KronosError",
    "LiveTradingRefused",
    "LookaheadError",
    "OrderInFlightError",
    "OrderNotFoundError",
    "OrderRejectedError",
    "RateLimitedError",
    "TemporaryExchangeError",
]
