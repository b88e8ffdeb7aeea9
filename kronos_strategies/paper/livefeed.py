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
        self._step = _tf.timeframe_ms(self._client.exchange, self.p.interval)
        self._next_poll = 0.0
        self._live = False
        self._done = False
        now = self._client.now_ms()
        self.last_now: int | None = now  # exchange time of the latest poll: how old a delivered bar is
        first = self.p.since
        if first is None:
            first = _history.bars_back(
                self._client, self.p.interval, now // self._step * self._step, self.p.warmup
            )
        self._last_ts = int(first) - self._step
        self._enqueue(_history.fetch_closed(self._client, self.p.interval, int(first), now))
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
                    _tf.ms_to_datetime(self._last_ts),
                    _tf.ms_to_datetime(ts),
                )
            self._queue.append(candle)
            self._last_ts = ts

    def _poll(self) -> None:
        """Fetch bars that closed since the last poll; temporary errors are logged and retried next poll."""
        try:
            now = self._client.now_ms()
            self.last_now = now
            self._enqueue(
                _history.fetch_closed(self._client, self.p.interval, self._last_ts + self._step, now)
            )
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
        if self.p.until is not None and ts >= self.p.until:
            self._done = True
        return True
