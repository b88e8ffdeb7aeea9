"""Moved to :mod:`kronos_strategies.emulator.matching`; this shim keeps the old import path for one release."""

from kronos_strategies.lazy import moved_getattr

_MOVED = dict.fromkeys(
    (
        "EmuOrder",
        "EmuTrade",
        "EmulatorReject",
        "MarketRules",
        "MatchingEngine",
        "ReplayClock",
        "load_candles",
    ),
    "kronos_strategies.emulator.matching",
)
__all__ = sorted(_MOVED)
__getattr__ = moved_getattr(__name__, _MOVED)
