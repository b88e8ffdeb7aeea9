"""Exchange candles for backtrader: a live feed of closed bars (downloads live in :mod:`kronos_strategies.exchange`).

``CcxtLiveFeed`` warms up with paginated ``fetch_ohlcv`` history, then polls and emits only candles whose
close time has passed on the exchange clock (never the forming one). Every poll asks for bars after the
last one delivered, so a dropped connection or a long pause resumes without duplicates or holes.
"""

from __future__ import annotations

import collections
import logging
import time

import backtrader as bt

from kronos_strategies.errors import TemporaryExchangeError
from kronos_strategies.exchange import history as _history
from kronos_strategies.exchange import timeframes as _tf
from kronos_strategies.exchange.client import ExchangeClient
from kronos_strategies.lazy import moved_getattr

log = logging.getLogger(__name__)

__all__ = ["CcxtLiveFeed"]
__getattr__ = moved_getattr(
    __name__,
    dict.fromkeys(("bars_back", "download_history", "fetch_closed"), "kronos_strategies.exchange.history")
    | dict.fromkeys(
        ("bar_ms", "bt_timeframe", "ms_to_datetime", "timeframe_ms"), "kronos_strategies.exchange.timeframes"
    ),
)


class CcxtLiveFeed(bt.feed.DataBase):
    """Closed candles of one ccxt symbol, live; ``islive()`` so cerebro runs bar by bar.

    Params:
      - client: a loaded :class:`ExchangeClient`
      - interval: ccxt timeframe string (``timeframe``/``compression`` keep backtrader's meaning)
      - warmup: bars of history delivered before live bars (at least the strategy's lookback)
      - since: open time (ms) of the first bar to deliver; overrides ``warmup`` (resumed sessions)
      - poll: seconds between polls once live
      - until: stop after the bar that opens at or after this epoch-ms time (None: run until stopped)
      - group: a :class:`FeedGroup` polling this feed together with other symbols' (universe sessions)
    """

    lines = ("amount",)  # turnover, the sixth Kronos feature (volume x mean price, as prepare_ohlcv fills it)
    params = (
        ("client", None),
        ("interval", "1m"),
        ("warmup", 500),
        ("since", None),
        ("poll", 5.0),
        ("until", None),
        ("group", None),
    )

    def islive(self) -> bool:
        """Live data: no preloading, no runonce."""
        return True

    def haslivedata(self) -> bool:
        """True while fetched bars wait to be delivered."""
        return bool(self._queue)

    def start(self) -> None:
        """Fetch the warm-up history (a grouped feed: every symbol's, at one exchange time)."""
        super().start()
        if self.p.group is not None:
            self.p.group.start()
        else:
            self._setup()
            self._warm(self._client.now_ms())
        self.put_notification(self.DELAYED)

    def _setup(self) -> None:
        """Empty queue and clocks."""
        self._queue: collections.deque[list[float]] = collections.deque()
        self._client: ExchangeClient = self.p.client
        self._step = _tf.timeframe_ms(self._client.exchange, self.p.interval)
        self._next_poll = 0.0
        self._live = False
        self._done = False

    def _warm(self, now: int) -> None:
        """Queue the history: from ``since`` (or ``warmup`` bars back) to the last candle closed at ``now``."""
        self.last_now: int | None = now  # exchange time of the latest poll: how old a delivered bar is
        first = self.p.since
        if first is None:
            first = _history.bars_back(
                self._client, self.p.interval, now // self._step * self._step, self.p.warmup
            )
        self._last_ts = int(first) - self._step
        self._enqueue(_history.fetch_closed(self._client, self.p.interval, int(first), now))
        self.warm_until = self._last_ts  # open time of the last history bar; later bars are live

    def _enqueue(self, candles: list[list[float]]) -> None:
        """Queue new candles after the last one, logging holes the exchange itself has."""
        for candle in candles:
            ts = int(candle[0])
            if ts <= self._last_ts:
                continue
            if ts != self._last_ts + self._step and self._last_ts >= 0 and (self._queue or self._live):
                log.warning(
                    "exchange has no candles between %s and %s",
                    _tf.ms_to_datetime(self._last_ts),
                    _tf.ms_to_datetime(ts),
                )
            self._queue.append(candle)
            self._last_ts = ts

    def _fetch_new(self, now: int) -> list[list[float]]:
        """Candles after the last queued one that closed before ``now``."""
        return _history.fetch_closed(self._client, self.p.interval, self._last_ts + self._step, now)

    def _poll(self) -> None:
        """Fetch bars that closed since the last poll; temporary errors are logged and retried next poll."""
        if self.p.group is not None:
            self.p.group.refresh()
            return
        try:
            now = self._client.now_ms()
            self.last_now = now
            self._enqueue(self._fetch_new(now))
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
        self.lines.datetime[0] = bt.date2num(_tf.ms_to_datetime(int(ts)))
        self.lines.open[0], self.lines.high[0], self.lines.low[0], self.lines.close[0] = o, h, lo, c
        self.lines.volume[0], self.lines.openinterest[0] = v or 0.0, 0.0
        self.lines.amount[0] = (v or 0.0) * ((o + h + lo + c) / 4.0)
        if self.p.until is not None and ts >= self.p.until:
            self._done = True
        return True


class FeedGroup:
    """Live feeds of several symbols polled together at one exchange time (a universe session).

    After every poll each feed holds all of its candles that closed before that time, so when one feed
    delivers bar t every other feed already holds its own bar t or has none (a hole in its candles):
    cerebro steps once per bar time across the symbols. A poll that fails for one symbol is dropped for all.
    """

    def __init__(self, poll: float) -> None:
        self.feeds: list[CcxtLiveFeed] = []
        self.poll = poll
        self.last_now: int | None = None  # exchange time of the latest complete poll
        self.warm_until: int | None = None  # open time of the last bar closed when the session started
        self._next_poll = 0.0
        self._started = False

    def add(self, feed: CcxtLiveFeed) -> CcxtLiveFeed:
        """Poll ``feed`` with the others (its ``group`` param must be this group)."""
        self.feeds.append(feed)
        return feed

    def start(self) -> None:
        """Every feed's history up to one exchange time (once, when cerebro starts the first feed)."""
        if self._started:
            return
        self._started = True
        now = self.feeds[0].p.client.now_ms()
        for feed in self.feeds:
            feed._setup()
            feed._warm(now)
        self.last_now = now
        self.warm_until = max(feed.warm_until for feed in self.feeds)
        self._next_poll = time.monotonic() + self.poll

    def refresh(self) -> None:
        """Every symbol's newly closed candles at one exchange time, at most once per ``poll`` seconds."""
        if time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + self.poll
        try:
            now = self.feeds[0]._client.now_ms()
            fresh = [feed._fetch_new(now) for feed in self.feeds if not feed._done]
        except TemporaryExchangeError as exc:
            log.warning("live feeds: %s; every symbol is polled again at the next poll", exc)
            return
        self.last_now = now
        for feed, candles in zip([f for f in self.feeds if not f._done], fresh, strict=True):
            feed.last_now = now
            feed._enqueue(candles)
