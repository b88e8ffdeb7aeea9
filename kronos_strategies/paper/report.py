"""Tear-sheet of a paper/sandbox/live session from its journal: equity returns against buy-and-hold."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from kronos_model.errors import InsufficientHistoryError
from kronos_strategies.reporting import periods_per_year, write_tearsheet


def journal_returns(path: str | Path) -> tuple[pd.Series, pd.Series]:
    """Per-bar returns of the session's equity and of holding the asset, indexed by bar open time (UTC)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such journal", str(path))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT e.bar_ts, e.value, b.close FROM equity e JOIN bars b USING (bar_ts) ORDER BY bar_ts"
        ).fetchall()
    if len(rows) < 3:
        raise InsufficientHistoryError(
            f"journal {path} has {len(rows)} processed bar(s); a report needs at least 3"
        )
    frame = pd.DataFrame(rows, columns=["ts", "value", "close"])
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("ts"), unit="ms"), name="datetime")
    returns = frame["value"].pct_change().fillna(0.0).rename("Strategy")
    benchmark = frame["close"].pct_change().fillna(0.0).rename("Buy & hold")
    return returns, benchmark


def write_report(journal: str | Path, output: str | Path, *, title: str | None = None) -> Path:
    """Write the quantstats HTML tear-sheet of a journaled session."""
    returns, benchmark = journal_returns(journal)
    title = title or f"kronos-bt session {Path(journal).name}"
    return write_tearsheet(returns, benchmark=benchmark, output=output, title=title,
                           periods=periods_per_year(returns.index))  # fmt: skip


def inspect_journal(path: str | Path) -> tuple[list[str], int]:
    """Intents -> exchange orders -> fills of a journal as text lines, and the number of problems called out.

    A problem is an intent with more than one exchange order (executed twice), fills that disagree with the
    exchange order's filled amount, a closed intent filled short or over, an intent lost, or a journaled
    position that differs from the sum of the fills.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such journal", str(path))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        intents = db.execute("SELECT * FROM intents ORDER BY bar_ts, cid").fetchall()
        orders = db.execute("SELECT * FROM orders").fetchall()
        fills = db.execute("SELECT * FROM fills ORDER BY ts, trade_id").fetchall()
        last = db.execute("SELECT size FROM positions ORDER BY bar_ts DESC LIMIT 1").fetchone()
    by_cid: dict[str, list[sqlite3.Row]] = {}
    for row in orders:
        by_cid.setdefault(row["cid"], []).append(row)
    fills_of: dict[str, list[sqlite3.Row]] = {}
    for row in fills:
        fills_of.setdefault(str(row["order_id"]), []).append(row)
    lines, problems = [], 0
    for intent in intents:
        stamp = pd.Timestamp(intent["bar_ts"], unit="ms")
        lines.append(f"{intent['cid']}  bar {stamp:%Y-%m-%d %H:%M}  {intent['side']} {intent['amount']:.8g} "
                     f"{intent['type']}  -> {intent['status']}" + (f" ({intent['reason']})" if intent["reason"] else ""))  # fmt: skip
        exchange_orders = by_cid.get(intent["cid"], [])
        if len(exchange_orders) > 1:
            problems += 1
            lines.append(f"    !! DUPLICATE: {len(exchange_orders)} exchange orders for one intent")
        if intent["status"] == "lost":
            problems += 1
            lines.append("    !! LOST: never reached the exchange and never re-sent")
        total = 0.0
        for order in exchange_orders:
            got = fills_of.get(str(order["order_id"]), [])
            amount = sum(f["amount"] for f in got)
            total += amount
            avg = sum(f["amount"] * f["price"] for f in got) / amount if amount else 0.0
            lines.append(f"    order {order['order_id']}  {order['status']}  filled {order['filled'] or 0:.8g}  "
                         f"{len(got)} fill(s) {amount:.8g} @ {avg:.8g}")  # fmt: skip
            if order["filled"] is not None and abs(amount - float(order["filled"])) > 1e-9:
                problems += 1
                lines.append(
                    f"    !! MISMATCH: fills sum to {amount:.8g}, the exchange says {order['filled']:.8g}"
                )
        if intent["status"] == "closed" and abs(total - intent["amount"]) > 1e-9 * max(1.0, intent["amount"]):
            problems += 1
            lines.append(f"    !! MISMATCH: closed intent of {intent['amount']:.8g} filled {total:.8g}")
    sign = {"buy": 1.0, "sell": -1.0}
    held = sum(sign.get(f["side"], 0.0) * f["amount"] for f in fills)
    if last is not None and abs(held - last[0]) > 1e-9:
        problems += 1
        lines.append(f"!! MISMATCH: journaled position {last[0]:.8g}, fills sum to {held:.8g}")
    lines.append(f"{len(intents)} intent(s), {len(orders)} exchange order(s), {len(fills)} fill(s), "
                 f"{problems} problem(s)")  # fmt: skip
    return lines, problems
