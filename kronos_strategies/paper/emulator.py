"""Moved to :mod:`kronos_strategies.emulator.server`; this shim keeps the old import path for one release."""

from kronos_strategies.lazy import moved_getattr

_MOVED = dict.fromkeys(("ExchangeEmulator", "FaultPlan"), "kronos_strategies.emulator.server")
__all__ = sorted(_MOVED)
__getattr__ = moved_getattr(__name__, _MOVED)
