"""Issue 11 bugs 2, 3 and 6 through whole sandbox sessions: late executions, duplicate executions, last bar.

The real ccxt client talks to the emulator on 127.0.0.1; the journal's position must equal the exchange's.
"""

from __future__ import annotations

import time

import backtrader as bt
import pytest

from kronos_strategies.cli import main
from kronos_strategies.paper.journal import Journal
from kronos_strategies.paper.session import PaperSession

from .helpers import ENV, fast_config


class Script(bt.Strategy):
    """Buys ``size`` on processed bar ``buy_at``; ``hook(strategy, n)`` runs before each processed bar."""

    params = (("buy_at", 2), ("size", 0.2), ("hook", None))

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> None:
        self.n += 1
        if self.p.hook is not None:
            self.p.hook(self, self.n)
        if self.n == self.p.buy_at:
            self.buy(size=self.p.size)


def _journal_position(path) -> tuple[float, list, list[str], list]:
    j = Journal(path)
    try:
        state = j.last_state()
        return state[1], j.orders(), j.duplicates(), j.events("duplicate")
    finally:
        j.close()


def test_the_last_bars_fill_reaches_the_position_and_equity_rows(emulator, tmp_path):
    emu = emulator(bar_seconds=0.1)
    config = fast_config(emu.url, tmp_path / "last.sqlite", warmup=5, max_bars=4)
    PaperSession(config, Script, {"buy_at": 4}, env=ENV).run()
    size, orders, dups, _ = _journal_position(tmp_path / "last.sqlite")
    assert len(emu.engine.orders) == 1 and emu.engine.free["BTC"] == pytest.approx(0.2)
    assert size == pytest.approx(0.2), "the fill of the last bar's order is missing from the positions table"
    j = Journal(tmp_path / "last.sqlite")
    try:
        cash = j.equity()[-1]["cash"]
    finally:
        j.close()
    assert cash == pytest.approx(emu.engine.free["USDT"] + emu.engine.locked["USDT"], rel=1e-12)
    assert cash < 10_000.0 - 0.2 * 90  # the purchase (about 20 USDT at ~100) left the equity table's cash


def test_a_duplicate_execution_is_journaled_flagged_and_booked(emulator, tmp_path, capsys):
    emu = emulator(bar_seconds=0.1)
    journal = tmp_path / "dup.sqlite"

    def duplicate(strategy: bt.Strategy, n: int) -> None:  # the exchange executes the first intent again
        if n == 4:
            cid = emu.engine.orders[0].client_id
            emu.engine.place("BUY", "MARKET", 0.2, None, cid)

    PaperSession(
        fast_config(emu.url, journal, warmup=5, max_bars=7), Script, {"hook": duplicate}, env=ENV
    ).run()
    size, orders, dups, events = _journal_position(journal)
    cid = emu.engine.orders[0].client_id
    assert [o.client_id for o in emu.engine.orders] == [cid, cid]
    assert sorted(r["order_id"] for r in orders) == sorted(str(o.order_id) for o in emu.engine.orders)
    assert dups == [cid] and events, "the duplicate was not called out"
    assert size == pytest.approx(emu.engine.free["BTC"]) == pytest.approx(0.4)
    assert main(["paper", "inspect", str(journal)]) == 0
    out = capsys.readouterr().out
    assert f"{cid}  bar" in out and "!! DUPLICATE: 2 exchange orders for one intent" in out
    assert "!! MISMATCH: closed intent of 0.2 filled 0.4" in out  # the intent was filled twice over
    assert out.strip().endswith("1 intent(s), 2 exchange order(s), 2 fill(s), 2 problem(s)")


def test_an_order_executed_after_the_timeout_is_placed_once_in_a_session(emulator, tmp_path):
    emu = emulator(bar_seconds=0.1)
    journal = tmp_path / "late.sqlite"
    original, armed, late = emu.handle, [False], []

    def handle(method: str, path: str, body: str, headers: dict) -> tuple:
        if armed[0] and method == "POST" and path.endswith("/order"):  # stuck in the gateway for 0.45 s
            armed[0] = False
            late.append(path)
            time.sleep(0.45)  # past the client's 0.3 s timeout, within its 0.5 s recvWindow
        return original(method, path, body, headers)

    emu.handle = handle

    def arm(strategy: bt.Strategy, n: int) -> None:
        if n == 2:
            armed[0] = True

    PaperSession(fast_config(emu.url, journal, warmup=5, max_bars=14), Script, {"hook": arm}, env=ENV).run()
    size, orders, dups, _ = _journal_position(journal)
    assert late, "the order POST was never delayed"
    assert len(emu.engine.orders) == 1, "a timed-out order was sent again and executed twice"
    assert len(orders) == 1 and not dups
    assert size == pytest.approx(emu.engine.free["BTC"]) == pytest.approx(0.2)


class EveryBar(bt.Strategy):
    """Buys a little on every processed bar; sleeps ``pause`` wall seconds on bar 3 (an outage)."""

    params = (("pause", 1.2),)

    def __init__(self) -> None:
        self.n = 0
        self.refused: list[str] = []

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Rejected:
            self.refused.append(order.info.get("reason") or "")

    def next(self) -> None:
        self.n += 1
        if self.n == 3:
            time.sleep(self.p.pause)
        self.buy(size=0.1)


def test_bars_caught_up_after_an_outage_trade_nothing(emulator, tmp_path):
    emu = emulator(bar_seconds=0.1)
    journal = tmp_path / "stale.sqlite"
    config = fast_config(emu.url, journal, warmup=5, max_bars=20, stale_after_bars=2)
    strategy = PaperSession(config, EveryBar, env=ENV).run().strategy
    j = Journal(journal)
    try:
        stale = j.events("stale")
        intents = j.intents()
    finally:
        j.close()
    assert len(stale) >= 5 and "no orders on it" in stale[0]["message"]
    assert len(strategy.refused) == len(stale) and "stale_after_bars" in strategy.refused[0]
    assert len(emu.engine.orders) == 20 - len(stale)  # every fresh bar traded, no stale one did
    assert sum(1 for r in intents if r["status"] == "closed") == len(emu.engine.orders)
