"""A loopback exchange for users and tests: a Binance-spot REST server that ccxt talks to unchanged, replaying
candles on an accelerated clock, matching orders, and injecting seeded faults. Not part of trading itself."""

from __future__ import annotations

from .matching import MarketRules, MatchingEngine, ReplayClock, load_candles
from .server import ExchangeEmulator, FaultPlan

__all__ = ["ExchangeEmulator", "FaultPlan", "MarketRules", "MatchingEngine", "ReplayClock", "load_candles"]
