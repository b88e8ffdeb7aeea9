"""Exchange candles for backtrader: a live feed of closed bars and a cached historical download.

``CcxtLiveFeed`` warms up with paginated ``fetch_ohlcv`` history, then polls and emits only candles whose
close time has passed on the exchange clock (never the forming one). Every poll asks for bars after the
last one delivered, so a dropped connection or a long pause resumes without duplicates or holes.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import time
from pathlib import Path

import backtrader as bt
import pandas as pd

from kronos_model.data import check_time_order, prepare_ohlcv
from kronos_strategies.errors import ConfigError, TemporaryExchangeError

from .exchange import ExchangeClient

log = logging.getLogger(__name__)

_PAGE = 1000


def timeframe_ms(exchange: object, timeframe: str) -> int:
    """Milliseconds in a ccxt timeframe string such as ``1m`` or ``4h``."""
    try:
        step = int(exchange.parse_timeframe(timeframe) * 1000)  # type: ignore[attr-defined]
    except Exception as exc:  # ccxt raises bare errors on malformed strings
        raise ConfigError(
            f"timeframe {timeframe!r} is not a ccxt timeframe such as '1m', '1h' or '1d'"
        ) from exc
    if step <= 0:
        raise ConfigError(f"timeframe {timeframe!r} is not a ccxt timeframe such as '1m', '1h' or '1d'")
    return step


def bt_timeframe(step_ms: int) -> tuple[int, int]:
    """backtrader (timeframe, compression) of a bar length in milliseconds."""
    if step_ms % 86_400_000 == 0:
        return bt.TimeFrame.Days, step_ms // 86_400_000
    if step_ms % 60_000 == 0:
        return bt.TimeFrame.Minutes, step_ms // 60_000
    return bt.TimeFrame.Seconds, max(step_ms // 1000, 1)


def ms_to_datetime(ms: int) -> dt.datetime:
    """Naive UTC datetime of an epoch-ms stamp (backtrader's convention)."""
    return dt.datetime.fromtimestamp(ms / 1000.0, tz=dt.timezone.utc).replace(tzinfo=None)


def bar_ms(data: bt.feed.DataBase, ago: int = 0) -> int:
    """Epoch-ms open time of a backtrader bar (rounded to the second, backtrader stores float days)."""
    stamp = bt.num2date(data.datetime[ago]).replace(tzinfo=dt.timezone.utc).timestamp()
    return int(round(stamp)) * 1000


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


class CcxtLiveFeed(bt.feed.DataBase):
    """Closed candles of one ccxt symbol, live; ``islive()`` so cerebro runs bar by bar.

    Params:
      - client: a loaded :class:`ExchangeClient`
      - interval: ccxt timeframe string (``timeframe``/``compression`` keep backtrader's meaning)
      - warmup: bars of history delivered before live bars (at least the strategy's lookback)
      - since: open time (ms) of the first bar to deliver; overrides ``warmup`` (resumed sessions)
      - poll: seconds between polls once live
      - until: stop after the bar that opens at or after this epoch-ms time (None: run until stopped)
    """

    params = (
        ("client", None),
        ("interval", "1m"),
        ("warmup", 500),
        ("since", None),
        ("poll", 5.0),
        ("until", None),
    )

    def islive(self) -> bool:
        """Live data: no preloading, no runonce."""
        return True

    def haslivedata(self) -> bool:
        """True while fetched bars wait to be delivered."""
        return bool(self._queue)

    def start(self) -> None:
        """Fetch the warm-up history."""
        super().start()
        self._queue: collections.deque[list[float]] = collections.deque()
        self._client: ExchangeClient = self.p.client
        self._step = timeframe_ms(self._client.exchange, self.p.interval)
        self._next_poll = 0.0
        self._live = False
        self._done = False
        now = self._client.now_ms()
        self.last_now: int | None = now  # exchange time of the latest poll: how old a delivered bar is
        first = self.p.since
        if first is None:
            first = bars_back(self._client, self.p.interval, now // self._step * self._step, self.p.warmup)
        self._last_ts = int(first) - self._step
        self._enqueue(fetch_closed(self._client, self.p.interval, int(first), now))
        self.warm_until = self._last_ts  # open time of the last history bar; later bars are live
        self.put_notification(self.DELAYED)

    def _enqueue(self, candles: list[list[float]]) -> None:
        """Queue new candles after the last one, logging holes the exchange itself has."""
        for candle in candles:
            ts = int(candle[0])
            if ts <= self._last_ts:
                continue
            if ts != self._last_ts + self._step and self._last_ts >= 0 and (self._queue or self._live):
                log.warning(
                    "exchange has no candles between %s and %s",
                    ms_to_datetime(self._last_ts),
                    ms_to_datetime(ts),
                )
            self._queue.append(candle)
            self._last_ts = ts

    def _poll(self) -> None:
        """Fetch bars that closed since the last poll; temporary errors are logged and retried next poll."""
        try:
            now = self._client.now_ms()
            self.last_now = now
            self._enqueue(fetch_closed(self._client, self.p.interval, self._last_ts + self._step, now))
        except TemporaryExchangeError as exc:
            log.warning("live feed: %s; reconnecting at the next poll", exc)

    def _load(self) -> bool | None:
        """Deliver the next closed bar; None while waiting for one; False after ``until``."""
        if self._done:
            return False
        if not self._queue:
            if not self._live:
                self._live = True
                self.put_notification(self.LIVE)
            wait = self._next_poll - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, max(self._qcheck, 0.01)))
                return None
            self._next_poll = time.monotonic() + self.p.poll
            self._poll()
            if not self._queue:
                return None
        ts, o, h, lo, c, v = self._queue.popleft()[:6]
        self.lines.datetime[0] = bt.date2num(ms_to_datetime(int(ts)))
        self.lines.open[0], self.lines.high[0], self.lines.low[0], self.lines.close[0] = o, h, lo, c
        self.lines.volume[0], self.lines.openinterest[0] = v or 0.0, 0.0
        if self.p.until is not None and ts >= self.p.until:
            self._done = True
        return True


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
