"""``CcxtBroker``: backtrader orders placed on a ccxt exchange (sandbox or live), each at most once.

Every intent is journaled under its deterministic client order id before it is sent (see :mod:`.broker`); fills,
open orders and balances are read back from the exchange, per symbol in a universe session.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from typing import Any

import backtrader as bt

from kronos_strategies.errors import ExchangeError, OrderRejectedError, TemporaryExchangeError
from kronos_strategies.exchange.timeframes import ms_to_datetime

from .broker import _EPS, LOST_REASON, _CidMixin, _otype, look_up_at_restart
from .journal import OPEN_STATES, Journal

__all__ = ["CcxtBroker"]

log = logging.getLogger(__name__)

_FINAL = {"closed": "closed", "canceled": "canceled", "cancelled": "canceled", "expired": "expired",
          "rejected": "rejected"}  # fmt: skip


@dataclass
class _Tracked:
    """An order followed on the exchange (``order`` is None for one adopted from an earlier run)."""

    cid: str
    side: str
    otype: str
    amount: float
    price: float | None
    order: bt.Order | None = None
    market: str | None = None  # the symbol's name in a universe session
    order_id: str | None = None
    filled: float = 0.0
    cancel_requested: bool = False


class CcxtBroker(_CidMixin, bt.BrokerBase):
    """Orders on a ccxt exchange (sandbox or live) for one symbol, or a universe's, each placed at most once.

    Params:
      - client: a loaded :class:`~kronos_strategies.exchange.ExchangeClient`
      - journal: the session's :class:`Journal`
      - data: the traded feed
      - poll: seconds between order/fill polls
      - clients, feeds: a universe session's clients and feeds by symbol name (one account, one quote
        currency); fills, open orders and positions are then followed per symbol
    """

    params = (("client", None), ("journal", None), ("data", None), ("poll", 1.0), ("clients", None),
              ("feeds", None))  # fmt: skip
    refuse: str | None = None  # set by the session on a stale bar: new orders are rejected with this reason

    def init(self) -> None:
        """Empty state; the real one is read from the exchange in ``start``."""
        super().init()
        self.cash = 0.0
        self.positions: collections.defaultdict[Any, bt.Position] = collections.defaultdict(bt.Position)
        self.notifs: collections.deque[bt.Order] = collections.deque()
        self._tracked: dict[str, _Tracked] = {}
        self._unresolved: set[str] = set()
        self._last_trade: dict[str | None, int] = {}
        self._next_poll = 0.0

    # --- start-up: balances, reconciliation ----------------------------------------------------------
    def start(self) -> None:
        """Reconcile unfinished intents by client order id, journal missed fills, then sync balances."""
        super().start()
        journal = self.p.journal
        self._clients: dict[str | None, Any] = dict(self.p.clients) if self.p.feeds else {None: self.p.client}
        self._feeds: dict[str | None, Any] = dict(self.p.feeds) if self.p.feeds else {None: self.p.data}
        self._quote = self.p.client.market["quote"]
        self._base = {name: client.market["base"] for name, client in self._clients.items()}
        self._last_trade = {name: journal.max_trade_id(name) for name in self._clients}
        for row in journal.intents(OPEN_STATES):
            market = row["symbol"] if self.p.feeds else None
            found = look_up_at_restart(self._clients[market], journal, row)
            if found is None:
                journal.set_intent(row["cid"], "lost", LOST_REASON)
                continue
            self._record_order(row["cid"], found)
            tracked = _Tracked(row["cid"], row["side"], row["type"], row["amount"], row["price"],
                               order_id=str(found["id"]), market=market)  # fmt: skip
            tracked.filled = sum(f["amount"] for f in journal.fills(row["cid"]))
            self._tracked[row["cid"]] = tracked
            journal.set_intent(row["cid"], "open")
        self._sync_balances()
        self.startingcash = self.cash
        held = ", ".join(f"{self.positions[f].size:.8g} {self._base[n]}" for n, f in self._feeds.items())
        journal.event("sync", f"cash {self.cash:.8g} {self._quote}, position {held}, "
                              f"{len(self._tracked)} open order(s) adopted")  # fmt: skip

    def _record_order(self, cid: str, order: dict[str, Any]) -> None:
        """Journal the exchange's view of an order; a second exchange order for one intent is an alarm."""
        if self.p.journal.record_order(cid, order):
            log.error(
                "DUPLICATE: intent %s was executed twice on the exchange (order %s)", cid, order.get("id")
            )

    def _sync_balances(self) -> None:
        """Cash and position from the account; fills that landed meanwhile are journaled as already counted."""
        journal = self.p.journal
        for _ in range(5):
            self._sync_fills(apply=False)
            before = dict(self._last_trade)
            balance = self.p.client.call("fetch_balance")
            self._sync_fills(apply=False)
            if self._last_trade == before:
                break
        self.cash = float((balance.get(self._quote) or {}).get("total") or 0.0)
        state = journal.last_state()
        held = journal.holdings() if self.p.feeds else {None: state[1:] if state is not None else None}
        for name, client in self._clients.items():
            size = float((balance.get(self._base[name]) or {}).get("total") or 0.0)
            known = held.get(name)
            if known is not None and abs(known[0] - size) < _EPS:
                price = known[1]
            else:
                price = float(client.call("fetch_ticker", client.symbol).get("last") or 0.0) if size else 0.0
            self.positions[self._feeds[name]] = bt.Position(size, price)

    # --- backtrader broker interface -----------------------------------------------------------------
    def getcash(self) -> float:
        """Quote-currency balance (free plus reserved)."""
        return self.cash

    def getvalue(self, datas: Any = None, mkt: bool = False, lever: bool = False) -> float:
        """As ``BackBroker.getvalue``: the value of the positions in ``datas`` only (what ``order_target_*``
        asks for), or cash plus every position marked at its last close when ``datas`` is None."""
        total = 0.0
        for data in datas if datas else list(self.positions):
            pos = self.positions[data]
            mark = data.close[0] if len(data) else pos.price
            total += self.getcommissioninfo(data).getvalue(pos, mark)
        return total if datas else self.cash + total

    get_value = getvalue

    def getposition(self, data: Any) -> bt.Position:
        """The position in ``data`` (base currency)."""
        return self.positions[data]

    def get_notification(self) -> bt.Order | None:
        """Next order notification for the strategy."""
        return self.notifs.popleft() if self.notifs else None

    def notify(self, order: bt.Order) -> None:
        """Queue a snapshot of the order for the strategy."""
        self.notifs.append(order.clone())

    def buy(self, owner: Any, data: Any, size: float, price: float | None = None, plimit: float | None = None,
            exectype: int | None = None, valid: Any = None, tradeid: int = 0, oco: Any = None,
            trailamount: float | None = None, trailpercent: float | None = None, **kwargs: Any) -> bt.Order:  # fmt: skip
        """Place a buy order (Market or Limit)."""
        order = bt.BuyOrder(owner=owner, data=data, size=size, price=price, pricelimit=plimit,
                            exectype=exectype, valid=valid, tradeid=tradeid)  # fmt: skip
        return self._submit(order, **kwargs)

    def sell(self, owner: Any, data: Any, size: float, price: float | None = None, plimit: float | None = None,
             exectype: int | None = None, valid: Any = None, tradeid: int = 0, oco: Any = None,
             trailamount: float | None = None, trailpercent: float | None = None, **kwargs: Any) -> bt.Order:  # fmt: skip
        """Place a sell order (Market or Limit)."""
        order = bt.SellOrder(owner=owner, data=data, size=size, price=price, pricelimit=plimit,
                             exectype=exectype, valid=valid, tradeid=tradeid)  # fmt: skip
        return self._submit(order, **kwargs)

    def _submit(self, order: bt.Order, **kwargs: Any) -> bt.Order:
        """Journal the intent, then send it unless an earlier run already did."""
        journal: Journal = self.p.journal
        order.addinfo(**kwargs)
        order.addcomminfo(self.getcommissioninfo(order.data))
        cid, bar_ts = self._next_cid(journal, order)
        market = self._market(order.data)[1]
        client = self._clients[market]
        order.addinfo(cid=cid)
        order.submit(self)
        self.notify(order)
        side, otype = ("buy" if order.isbuy() else "sell"), _otype(order)
        known = journal.intent(cid)
        if known is not None and known["status"] not in ("lost",):
            return self._adopt(order, known)
        if self.refuse:  # a lost intent replayed on a stale bar is given up, not left to be replayed again
            if known is not None:
                journal.set_intent(cid, "rejected", f"not re-sent: {self.refuse}")
            return self._reject(order, self.refuse)
        try:
            if otype == "unsupported":
                raise OrderRejectedError("only Market and Limit orders are supported by CcxtBroker")
            price = order.created.price if otype == "limit" else None
            ref = order.data.close[0]
            amount, price = client.round_order(otype, abs(order.created.size), price, ref)
        except OrderRejectedError as exc:
            if known is None:
                journal.record_intent(
                    cid,
                    bar_ts,
                    side,
                    otype,
                    abs(order.created.size),
                    None,
                    "rejected",
                    str(exc),
                    symbol=market,
                )
            return self._reject(order, str(exc))
        if known is None:
            journal.record_intent(cid, bar_ts, side, otype, amount, price, symbol=market)
        else:
            journal.set_intent(cid, "pending", "re-sent: it never reached the exchange before the restart")
        tracked = _Tracked(cid, side, otype, amount, price, order=order, market=market)
        self._tracked[cid] = tracked
        self._send(tracked, maybe_sent=False)
        return order

    def _adopt(self, order: bt.Order, row: Any) -> bt.Order:
        """The same intent was journaled by an earlier run: follow it, never send it again."""
        cid = row["cid"]
        if row["status"] == "rejected":
            return self._reject(order, row["reason"] or "rejected in an earlier run")
        tracked = self._tracked.get(cid)
        if tracked is not None:
            tracked.order = order
        order.accept(self)
        self.notify(order)
        if tracked is None:  # it already finished before the restart; its fills are in the balances
            order.executed.remsize = 0
            if row["status"] == "closed":
                order.completed()
            elif row["status"] == "canceled":
                order.cancel()
            else:
                order.reject(self)
            self.notify(order)
        return order

    def _reject(self, order: bt.Order, reason: str) -> bt.Order:
        """Tell the strategy the order was refused, and why."""
        log.warning("order %s rejected: %s", order.info.cid, reason)
        order.addinfo(reason=reason)
        order.reject(self)
        self.notify(order)
        return order

    def _send(self, tracked: _Tracked, *, maybe_sent: bool) -> None:
        """Place (or find) the order; an unknown outcome is left for the next poll to resolve."""
        journal: Journal = self.p.journal
        try:
            placed = self._clients[tracked.market].place_order(tracked.cid, tracked.side, tracked.otype, tracked.amount,
                                               tracked.price, maybe_sent=maybe_sent,
                                               on_send=lambda when: journal.mark_sent(tracked.cid, when))  # fmt: skip
        except TemporaryExchangeError as exc:
            if tracked.cid not in self._unresolved:
                journal.event("unresolved", f"{tracked.cid}: {exc}")
            self._unresolved.add(tracked.cid)
            return
        except ExchangeError as exc:  # rejected, or keys refused: never retried
            self._unresolved.discard(tracked.cid)
            self._tracked.pop(tracked.cid, None)
            journal.set_intent(tracked.cid, "rejected", str(exc))
            if tracked.order is not None:
                self._reject(tracked.order, str(exc))
            return
        self._unresolved.discard(tracked.cid)
        tracked.order_id = str(placed["id"])
        self._record_order(tracked.cid, placed)
        journal.set_intent(tracked.cid, "open")
        if tracked.order is not None and tracked.order.status == bt.Order.Submitted:
            tracked.order.accept(self)
            self.notify(tracked.order)
        if tracked.cancel_requested and tracked.order is not None:
            self.cancel(tracked.order)
        self._next_poll = 0.0  # look at fills right away (market orders fill at once)

    def cancel(self, order: bt.Order | None) -> None:
        """Ask the exchange to cancel; the Canceled notification follows once the fills are settled."""
        if order is None:
            return
        tracked = self._tracked.get(order.info.get("cid", ""))
        if tracked is None:
            return
        tracked.cancel_requested = True
        if tracked.cid in self._unresolved:
            return
        try:
            answer = self._clients[tracked.market].cancel_order(tracked.cid)
        except TemporaryExchangeError as exc:
            log.warning("cancel %s failed for now (%s); retrying at the next poll", tracked.cid, exc)
            return
        except ExchangeError as exc:
            log.warning("cancel %s refused: %s", tracked.cid, exc)
            return
        tracked.cancel_requested = False
        if answer is not None:
            self._record_order(tracked.cid, answer)
        self._next_poll = 0.0

    def next(self) -> None:
        """Every ``poll`` seconds: resolve unknown placements, retry cancels, pull fills and final states."""
        if time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + self.p.poll
        for cid in list(self._unresolved):
            self._send(self._tracked[cid], maybe_sent=True)
        for tracked in list(self._tracked.values()):
            if tracked.cancel_requested and tracked.order_id is not None:
                self.cancel(tracked.order)
        try:
            self._refresh()
        except TemporaryExchangeError as exc:
            log.warning("order refresh failed (%s); retrying at the next poll", exc)

    def settle(self) -> None:
        """Once per bar: the fills of orders just sent (and any late or duplicate execution of an earlier
        intent) reach cash, position and the journal before the bar's row is written."""
        self._next_poll = 0.0
        self.next()
        if not self._tracked:  # next() skipped the fills: nothing was in flight
            try:
                self._sync_fills(apply=True)
            except TemporaryExchangeError as exc:
                log.warning("fill check failed (%s); retrying at the next bar", exc)

    def stop(self) -> None:
        """Pull the last fills and order states so the journal ends complete."""
        try:
            self._next_poll = 0.0
            self.next()
        except TemporaryExchangeError as exc:
            log.warning("final order refresh failed (%s); a restart will reconcile", exc)
        super().stop()

    # --- fills and order states ----------------------------------------------------------------------
    def _refresh(self) -> None:
        """Apply new fills, then close out tracked orders that are no longer open on the exchange."""
        if not self._tracked:
            return
        self._sync_fills(apply=True)  # even when no exchange id is known yet: a late execution shows up here
        if not any(t.order_id for t in self._tracked.values()):
            return
        open_ids: set[Any] = set()
        for market in {t.market for t in self._tracked.values() if t.order_id}:
            client = self._clients[market]
            open_ids |= {o.get("clientOrderId") for o in client.call("fetch_open_orders", client.symbol)}
        for tracked in list(self._tracked.values()):
            if tracked.order_id is None or tracked.cid in open_ids:
                continue
            found = self._clients[tracked.market].find_order(tracked.cid)
            if found is None:
                continue
            self._record_order(tracked.cid, found)
            if tracked.filled + _EPS < float(found.get("filled") or 0.0):
                continue  # its last fills are not listed yet; next poll
            self._finish(tracked, str(found.get("status")))

    def _sync_fills(self, *, apply: bool) -> None:
        """Journal every new fill of our orders once (by trade id); ``apply`` books it into cash/position."""
        for market, client in self._clients.items():
            self._sync_market_fills(market, client, apply=apply)

    def _sync_market_fills(self, market: str | None, client: Any, *, apply: bool) -> None:
        """New fills of one symbol (exchanges number trades and orders per symbol)."""
        journal = self.p.journal
        for trade in client.trades_since(self._last_trade[market] + 1):
            self._last_trade[market] = max(self._last_trade[market], int(trade["id"]))
            order_id = str(trade["order"])
            cid = journal.cid_for_order(order_id, market)
            if cid is None:
                info = client.call("fetch_order", order_id, client.symbol)
                cid = info.get("clientOrderId")
                if cid is None or journal.intent(cid) is None:
                    log.warning(
                        "fill %s belongs to order %s not placed by this session", trade["id"], order_id
                    )
                    continue
                self._record_order(cid, info)
            fee = trade.get("fee") or {}
            trade_id = str(trade["id"]) if market is None else f"{market}:{trade['id']}"
            new = journal.record_fill(trade_id, cid, order_id, int(trade["timestamp"] or 0), trade["side"],
                                      float(trade["amount"]), float(trade["price"]), float(fee.get("cost") or 0.0),
                                      fee.get("currency"))  # fmt: skip
            tracked = self._tracked.get(cid)
            if new and tracked is not None:
                tracked.filled += float(trade["amount"])
            if new and apply:
                self._apply_fill(tracked, trade, fee, market)

    def _apply_fill(self, tracked: _Tracked | None, trade: dict[str, Any], fee: dict[str, Any],
                    market: str | None = None) -> None:  # fmt: skip
        """Book one fill into cash and position, and into the backtrader order the strategy holds."""
        data, base = self._feeds[market], self._base[market]
        amount, price = float(trade["amount"]), float(trade["price"])
        signed = amount if trade["side"] == "buy" else -amount
        fee_cost, fee_ccy = float(fee.get("cost") or 0.0), fee.get("currency")
        self.cash -= signed * price
        fee_quote = 0.0  # a fee in a third currency (e.g. BNB) costs neither cash nor position here
        if fee_ccy == self._quote:
            self.cash -= fee_cost
            fee_quote = fee_cost
        elif fee_ccy == base:  # the exchange kept part of the coins
            fee_quote = fee_cost * price
        size = signed - (fee_cost if fee_ccy == base else 0.0)
        pos = self.positions[data]
        pprice_orig = pos.price
        psize, pprice, opened, closed = pos.update(size, price)
        pos.size = psize = round(psize, 12)  # float dust would become an unsellable remainder
        if not psize:
            pos.price = pprice = 0.0
        order = tracked.order if tracked is not None else None
        if order is None:
            return
        comminfo = self.getcommissioninfo(data)
        closedcomm = fee_quote * abs(closed) / abs(size) if size else 0.0
        order.execute(bt.date2num(ms_to_datetime(int(trade["timestamp"] or 0))), size, price,
                      closed, comminfo.getoperationcost(closed, pprice_orig), closedcomm,
                      opened, comminfo.getoperationcost(opened, price), fee_quote - closedcomm,
                      0.0, comminfo.profitandloss(-closed, pprice_orig, price), psize, pprice)  # fmt: skip
        if tracked.filled + _EPS >= tracked.amount:
            order.executed.remsize = 0
            order.completed()
        else:
            order.partial()
        self.notify(order)

    def _finish(self, tracked: _Tracked, status: str) -> None:
        """Final state from the exchange: journal it and tell the strategy."""
        final = _FINAL.get(status, "closed" if tracked.filled + _EPS >= tracked.amount else "canceled")
        self._tracked.pop(tracked.cid, None)
        self.p.journal.set_intent(tracked.cid, final)
        order = tracked.order
        if order is None or not order.alive():
            return
        if final == "closed":
            order.executed.remsize = 0
            order.completed()
        elif final == "canceled":
            order.cancel()
        elif final == "expired":
            order.status = bt.Order.Expired  # Order.expire() only honours backtrader's own ``valid``
        else:
            order.reject(self)
        self.notify(order)
