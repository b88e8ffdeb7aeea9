"""Paper, sandbox and live trading through ccxt: live feed, brokers, journal and sessions.

Exchange access lives in :mod:`kronos_strategies.exchange` and the loopback exchange emulator in
:mod:`kronos_strategies.emulator`; their old names here still resolve for one release, with a DeprecationWarning.
"""

from __future__ import annotations

from kronos_strategies.lazy import moved_getattr

from .broker import PaperBroker, make_cid
from .ccxt_broker import CcxtBroker
from .config import PaperConfig, PaperSection, paper_config
from .journal import Journal
from .livefeed import CcxtLiveFeed
from .session import LiveTradingRefused, PaperSession, SessionResult

__all__ = [
    "CcxtBroker",
    "CcxtLiveFeed",
    "Journal",
    "LiveTradingRefused",
    "PaperBroker",
    "PaperConfig",
    "PaperSection",
    "PaperSession",
    "SessionResult",
    "paper_config",
    "make_cid",
]

__getattr__ = moved_getattr(
    __name__,
    dict.fromkeys(("ExchangeClient", "make_exchange", "download_history"), "kronos_strategies.exchange")
    | dict.fromkeys(
        ("ExchangeEmulator", "FaultPlan", "MarketRules", "MatchingEngine", "ReplayClock", "load_candles"),
        "kronos_strategies.emulator",
    ),
)
