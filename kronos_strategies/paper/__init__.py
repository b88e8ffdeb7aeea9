"""Paper, sandbox and live trading through ccxt: live feed, brokers, journal, and a loopback exchange emulator."""

from __future__ import annotations

from .broker import CcxtBroker, PaperBroker, make_cid
from .config import PaperConfig, PaperSection, paper_config
from .emulator import ExchangeEmulator, FaultPlan
from .exchange import ExchangeClient, make_exchange
from .journal import Journal
from .livefeed import CcxtLiveFeed, download_history
from .matching import MarketRules, MatchingEngine, ReplayClock, load_candles
from .session import LiveTradingRefused, PaperSession, SessionResult

__all__ = [
    "CcxtBroker",
    "CcxtLiveFeed",
    "ExchangeClient",
    "ExchangeEmulator",
    "FaultPlan",
    "Journal",
    "LiveTradingRefused",
    "MarketRules",
    "MatchingEngine",
    "PaperBroker",
    "PaperConfig",
    "PaperSection",
    "PaperSession",
    "ReplayClock",
    "SessionResult",
    "download_history",
    "load_candles",
    "paper_config",
    "make_cid",
    "make_exchange",
]
