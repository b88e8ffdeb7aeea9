"""Exchange access through ccxt, shared by backtests (``source: ccxt`` bars) and paper trading: the client
wrapper (errors translated, retries, idempotent orders), candle downloads, and timeframe helpers."""

from __future__ import annotations

from .client import ExchangeClient, make_exchange, translate
from .history import bars_back, candle_cache_dir, download_history, fetch_closed, load_ccxt_bars
from .timeframes import bar_ms, bt_timeframe, epoch_ms, ms_to_datetime, timeframe_ms

__all__ = [
    "ExchangeClient",
    "bar_ms",
    "bars_back",
    "bt_timeframe",
    "candle_cache_dir",
    "download_history",
    "epoch_ms",
    "fetch_closed",
    "load_ccxt_bars",
    "make_exchange",
    "ms_to_datetime",
    "timeframe_ms",
    "translate",
]
