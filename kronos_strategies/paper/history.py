"""Moved to :mod:`kronos_strategies.exchange.history`; this shim keeps the old import path for one release."""

from kronos_strategies.lazy import moved_getattr

_MOVED = {
    "load_ccxt_bars": "kronos_strategies.exchange.history",
    "_cache_dir": "kronos_strategies.exchange.history:candle_cache_dir",
    "_epoch_ms": "kronos_strategies.exchange.timeframes:epoch_ms",
}
__all__ = ["load_ccxt_bars"]  # noqa: F822  (resolved by __getattr__)
__getattr__ = moved_getattr(__name__, _MOVED)
