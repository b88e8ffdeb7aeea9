"""Closed exchange candles through ccxt: paginated fetches, a download cached on disk, and backtest bars.

Backtests (``data: {source: ccxt, ...}``, universe assets), ``kronos-bt finetune`` and paper trading's warm-up
all download here. A re-run over the same closed period reads every bar from the cache and sends no request.
Candles from an overridden ``data.url`` (the emulator) are cached apart from the real exchange's.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pandas as pd

from kronos_model.data import check_time_order, prepare_ohlcv

from .client import ExchangeClient, make_exchange
from .timeframes import epoch_ms, ms_to_datetime, timeframe_ms

if TYPE_CHECKING:
    from kronos_strategies.config import BacktestConfig

log = logging.getLogger(__name__)

__all__ = ["bars_back", "candle_cache_dir", "download_history", "fetch_closed", "load_ccxt_bars"]

_PAGE = 1000


def fetch_closed(client: ExchangeClient, timeframe: str, since: int, now: int) -> list[list[float]]:
    """All candles opening at or after ``since`` that closed before ``now``, paginated, ascending."""
    step = timeframe_ms(client.exchange, timeframe)
    out: list[list[float]] = []
    while since + step <= now:
        page = client.call("fetch_ohlcv", client.symbol, timeframe, since, _PAGE)
        page = [c for c in page if c[0] >= since and c[0] + step <= now]
        if not page:
            break
        out.extend(page)
        since = int(page[-1][0]) + step
    return out


def bars_back(client: ExchangeClient, timeframe: str, end: int, count: int) -> int:
    """Open time of the ``count``-th closed candle before ``end``, counted in bars: holes in the exchange's
    candles (maintenance) widen the window instead of shortening the history."""
    step = timeframe_ms(client.exchange, timeframe)
    span = max(count, 1)
    for _ in range(8):
        since = end - span * step
        candles = fetch_closed(client, timeframe, since, end)
        if len(candles) >= count:
            return int(candles[-count][0]) if count else end
        span *= 2
    log.warning("the exchange has fewer than %d candles before %s; starting with what it has", count,
                ms_to_datetime(end))  # fmt: skip
    return since


def candle_cache_dir(root: str | None, url: str | None) -> Path | None:
    """The candle cache folder; an overridden API URL gets its own sub-folder."""
    if root is None:
        return None
    if url is None:
        return Path(root)
    return Path(root) / re.sub(r"[^A-Za-z0-9.-]+", "_", urlsplit(url).netloc)


def download_history(client: ExchangeClient, timeframe: str, start: int, end: int | None = None, *,
                     cache_dir: str | Path | None = None) -> pd.DataFrame:  # fmt: skip
    """Closed candles in [start, end) as a UTC-indexed OHLCV frame; with ``cache_dir`` only missing bars are fetched.

    When the cache already holds every bar of [start, end), nothing is requested (not even the server time);
    an unloaded ``client`` loads its markets only when a request is needed.
    """
    step = timeframe_ms(client.exchange, timeframe)
    cached = pd.DataFrame()
    path = None
    if cache_dir is not None:
        name = f"{client.exchange.id}_{client.symbol.replace('/', '-')}_{timeframe}.csv"
        path = Path(cache_dir) / name
        if path.exists():
            cached = pd.read_csv(path, index_col="ts")
    have = set(cached.index.astype("int64")) if len(cached) else set()
    first = -(-start // step) * step
    if end is None or any(ts not in have for ts in range(first, end, step)):
        if not client.market:
            client.load(timeframe)
        now = client.now_ms()
        end = min(end if end is not None else now, now)
    fresh: list[list[float]] = []
    cursor = start
    while cursor + step <= end:
        if cursor in have:  # skip the cached run
            cursor += step
            continue
        batch = [c for c in fetch_closed(client, timeframe, cursor, end) if c[0] < end]
        if not batch:
            break
        fresh.extend(batch)
        cursor = int(batch[-1][0]) + step
    frame = pd.DataFrame(fresh, columns=["ts", "open", "high", "low", "close", "volume"]).set_index("ts")
    merged = pd.concat([cached, frame]) if len(cached) else frame
    merged = merged[~merged.index.duplicated(keep="last")].sort_index()
    if path is not None and len(frame):
        path.parent.mkdir(parents=True, exist_ok=True)
        merged.to_csv(path)
    window = merged[(merged.index >= start) & (merged.index < end)]
    out = prepare_ohlcv(window, name=f"{client.symbol} {timeframe} history")[
        ["open", "high", "low", "close", "volume"]
    ]
    out.index = pd.DatetimeIndex(
        pd.to_datetime(window.index.to_numpy(dtype="int64"), unit="ms"), name="datetime"
    )
    check_time_order(out.index, name=f"{client.symbol} {timeframe} history")
    return out


def load_ccxt_bars(cfg: BacktestConfig) -> pd.DataFrame:
    """Closed candles for a ``source: ccxt`` config: from ``data.since`` (or ``dates.start`` less the
    indicator's warm-up) through ``dates.end`` inclusive (or now)."""
    data = cfg.data
    exchange = make_exchange(data.exchange, url=data.url)
    step = timeframe_ms(exchange, data.timeframe)
    if data.since is not None:
        start = epoch_ms(data.since)
    else:
        start = epoch_ms(str(cfg.dates.start)) - (cfg.indicator.lookback - 1) * step
    end = None if cfg.dates.end is None else epoch_ms(str(cfg.dates.end)) + step
    client = ExchangeClient(exchange, str(data.symbol))  # markets load only if a request is needed
    return download_history(
        client, data.timeframe, start, end, cache_dir=candle_cache_dir(data.cache_dir, data.url)
    )
