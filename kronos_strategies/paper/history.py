"""Backtest bars from a ccxt exchange (``data: {source: ccxt, ...}``), downloaded once and cached on disk.

The download is :func:`~kronos_strategies.paper.livefeed.download_history`; a re-run over the same closed
period reads every bar from the cache and sends no request. Candles from an overridden ``data.url`` (the
emulator) are cached apart from the real exchange's.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from kronos_strategies.config import BacktestConfig

from .exchange import ExchangeClient, make_exchange
from .livefeed import download_history, timeframe_ms

__all__ = ["load_ccxt_bars"]


def _epoch_ms(text: str) -> int:
    """Epoch milliseconds of an ISO date/time (naive values are UTC)."""
    stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return int(stamp.timestamp() * 1000)


def _cache_dir(root: str | None, url: str | None) -> Path | None:
    """The candle cache folder; an overridden API URL gets its own sub-folder."""
    if root is None:
        return None
    if url is None:
        return Path(root)
    return Path(root) / re.sub(r"[^A-Za-z0-9.-]+", "_", urlsplit(url).netloc)


def load_ccxt_bars(cfg: BacktestConfig) -> pd.DataFrame:
    """Closed candles for a ``source: ccxt`` config: from ``data.since`` (or ``dates.start`` less the
    indicator's warm-up) through ``dates.end`` inclusive (or now)."""
    data = cfg.data
    exchange = make_exchange(data.exchange, url=data.url)
    step = timeframe_ms(exchange, data.timeframe)
    if data.since is not None:
        start = _epoch_ms(data.since)
    else:
        start = _epoch_ms(str(cfg.dates.start)) - (cfg.indicator.lookback - 1) * step
    end = None if cfg.dates.end is None else _epoch_ms(str(cfg.dates.end)) + step
    client = ExchangeClient(exchange, str(data.symbol))  # markets load only if a request is needed
    return download_history(
        client, data.timeframe, start, end, cache_dir=_cache_dir(data.cache_dir, data.url)
    )
