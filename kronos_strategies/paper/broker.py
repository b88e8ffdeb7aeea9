"""Paper trading's local broker ``PaperBroker`` and what it shares with ``CcxtBroker`` (``ccxt_broker``).

Both brokers name every order intent with a deterministic client order id (session, bar, index within the bar)
and journal it before anything else happens, so a restarted session that processes the same bar again
produces the same id and finds the order instead of sending it twice.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

import backtrader as bt

from kronos_strategies.exchange.timeframes import bar_ms
from kronos_strategies.lazy import moved_getattr

from .journal import OPEN_STATES, Journal

log = logging.getLogger(__name__)

_EPS = 1e-9


def make_cid(session_id: str, bar_ts: int, index: int, market: int | None = None) -> str:
    """Client order id of the ``index``-th intent issued on the bar opening at ``bar_ts`` (Binance-safe, at most
    36 characters); in a universe session ``market`` is the symbol's position in the universe."""
    if market is None:
        return f"kbt-{session_id}-{bar_ts // 1000:x}-{index}"
    return f"kbt-{session_id}-{bar_ts // 1000:x}-m{market}-{index}"


LOST_REASON = "never reached the exchange (looked up at restart); re-sent when its bar is processed again"


def look_up_at_restart(client: Any, journal: Journal, row: Any) -> dict[str, Any] | None:
    """The exchange order of an unfinished intent; one sent shortly before the kill may still arrive, so
    an empty answer counts only once its recvWindow has passed."""
    found = client.find_order(row["cid"])
    deadline = client.arrival_deadline(float(row["sent"] or row["created"]))
    if found is None and time.time() < deadline:
        journal.event("wait", f"{row['cid']}: waiting {deadline - time.time():.1f}s (recvWindow) "
                              "before deciding it never arrived")  # fmt: skip
        time.sleep(max(0.0, deadline - time.time()))
        found = client.find_order(row["cid"])
    return found


def replay_from(client: Any, journal: Journal, clients: Mapping[str, Any] | None = None) -> int | None:
    """Before a restarted exchange session starts: settle unfinished intents, and return the open time of the
    earliest bar whose intent never reached the exchange (that bar and the ones after it are processed again,
    so the intent is re-sent with the same decision), or None. ``clients``: a universe's, by symbol name."""
    for row in journal.intents(OPEN_STATES):
        found = look_up_at_restart((clients or {}).get(row["symbol"], client), journal, row)
        if found is None:
            journal.set_intent(row["cid"], "lost", LOST_REASON)
        elif journal.record_order(row["cid"], found):
            log.error("DUPLICATE: intent %s was executed twice on the exchange", row["cid"])
    lost = [int(r["bar_ts"]) for r in journal.intents(("lost",))]
    return min(lost) if lost else None


class _CidMixin:
    """Hands out client order ids per bar (and per symbol in a universe session)."""

    def _market(self, data: Any) -> tuple[int | None, str | None]:
        """The symbol's position in the universe and its name; (None, None) in a one-symbol session."""
        feeds = getattr(self.p, "feeds", None)  # type: ignore[attr-defined]
        if not feeds:
            return None, None
        return next(
            i for i, feed in enumerate(feeds.values()) if feed is data
        ), data._name  # lines overload ==

    def _next_cid(self, journal: Journal, order: bt.Order) -> tuple[str, int]:
        bar_ts = bar_ms(order.data)
        market, _ = self._market(order.data)
        counts = self.__dict__.setdefault("_bar_counts", collections.Counter())
        index = counts[bar_ts, market]
        counts[bar_ts, market] += 1
        return make_cid(journal.session_id, bar_ts, index, market), bar_ts


class PaperBroker(_CidMixin, bt.brokers.BackBroker):
    """backtrader's simulated broker (next-bar market fills, limit crossing, fees, slippage), journaled.

    Params (besides BackBroker's): ``journal`` (a :class:`Journal`), ``data`` (the traded feed), ``feeds``
    (a universe session's feeds by symbol name; positions and intents are then kept per symbol).
    Nothing is sent to any exchange.
    """

    params = (("journal", None), ("data", None), ("feeds", None))
    refuse: str | None = None  # set by the session on a stale bar: new orders are rejected with this reason

    def submit(self, order: bt.Order, check: bool = True) -> bt.Order:
        """Accept the order like BackBroker, unless the session refuses orders on this bar."""
        if self.refuse:
            order.addinfo(reason=self.refuse)
            order.reject(self)
            self.notify(order)
            return order
        return super().submit(order, check)

    def start(self) -> None:
        """Start from the journal's last cash and position when the session is resumed."""
        super().start()
        self._seen: dict[int, tuple[float, float, float, int]] = {}
        journal: Journal = self.p.journal
        for row in journal.intents(OPEN_STATES):
            journal.set_intent(row["cid"], "lost", "paper order still pending when the session stopped")
        state = journal.last_state()
        if state is not None and self.p.feeds:
            self.cash = state[0]
            held = journal.holdings()
            for name, (size, price) in held.items():
                self.positions[self.p.feeds[name]] = bt.Position(size, price)
            journal.event("resume", f"paper cash {self.cash:.8g}, positions {held}")
        elif state is not None:
            cash, size, price = state
            self.cash = cash
            self.positions[self.p.data] = bt.Position(size, price)
            journal.event("resume", f"paper cash {cash:.8g}, position {size:.8g} @ {price:.8g}")

    def notify(self, order: bt.Order) -> None:
        """Journal the intent on first sight, each new fill, and the final state."""
        journal: Journal = self.p.journal
        if "cid" not in order.info:
            cid, bar_ts = self._next_cid(journal, order)
            order.addinfo(cid=cid)
            price = order.created.price if order.exectype != bt.Order.Market else None
            journal.record_intent(cid, bar_ts, "buy" if order.isbuy() else "sell", _otype(order),
                                  abs(order.created.size), price, status="open",
                                  symbol=self._market(order.data)[1])  # fmt: skip
        cid = order.info.cid
        size, value, comm, n = self._seen.get(order.ref, (0.0, 0.0, 0.0, 0))
        ex = order.executed
        delta = abs(ex.size) - size
        if delta > _EPS:
            total = abs(ex.size) * ex.price
            px = (total - value) / delta
            stamp = int(round(_num_ms(ex.dt)))
            journal.record_fill(f"{cid}-{n}", cid, cid, stamp, "buy" if order.isbuy() else "sell", delta, px,
                                ex.comm - comm, "quote")  # fmt: skip
            self._seen[order.ref] = (abs(ex.size), total, ex.comm, n + 1)
        final = {bt.Order.Completed: "closed", bt.Order.Canceled: "canceled", bt.Order.Expired: "expired",
                 bt.Order.Margin: "rejected", bt.Order.Rejected: "rejected"}.get(order.status)  # fmt: skip
        if final:
            reason = (
                "not enough cash (margin)" if order.status == bt.Order.Margin else order.info.get("reason")
            )
            journal.set_intent(cid, final, reason)
        super().notify(order)


def _num_ms(num: float) -> float:
    """Epoch ms of a backtrader float date."""
    return bt.num2date(num).replace(tzinfo=dt.timezone.utc).timestamp() * 1000.0


def _otype(order: bt.Order) -> str:
    """ccxt order type of a backtrader order."""
    return {bt.Order.Market: "market", bt.Order.Limit: "limit"}.get(order.exectype, "unsupported")


__getattr__ = moved_getattr(__name__, {"CcxtBroker": "kronos_strategies.paper.ccxt_broker"})
