"""Moved to :mod:`kronos_strategies.exchange.client`; this shim keeps the old import path for one release."""

from kronos_strategies.lazy import moved_getattr

_MOVED = dict.fromkeys(
    ("ExchangeAuthError", "ExchangeClient", "OrderInFlightError", "OrderNotFoundError", "RateLimitedError",
     "make_exchange", "translate"),
    "kronos_strategies.exchange.client",
)  # fmt: skip
__all__ = sorted(_MOVED)
__getattr__ = moved_getattr(__name__, _MOVED)
