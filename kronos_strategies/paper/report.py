"""Tear-sheet of a paper/sandbox/live session from its journal: equity returns against buy-and-hold (a universe
session: against the equal-weight universe, rebalanced every bar)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd

from kronos_model.errors import InsufficientHistoryError
from kronos_strategies.reporting import periods_per_year, write_tearsheet


def journal_returns(path: str | Path) -> tuple[pd.Series, pd.Series]:
    """Per-bar returns of the session's equity and of holding the asset (every symbol at equal weight in a
    universe session), indexed by bar open time (UTC)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "no such journal", str(path))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT e.bar_ts, e.value, b.close FROM equity e JOIN bars b USING (bar_ts) ORDER BY bar_ts"
        ).fetchall()
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        symbols = (
            db.execute("SELECT bar_ts, symbol, close FROM symbol_bars").fetchall()
            if "symbol_bars" in tables
            else []
        )
    if len(rows) < 3:
        raise InsufficientHistoryError(
            f"journal {path} has {len(rows)} processed bar(s); a report needs at least 3"
        )
    frame = pd.DataFrame(rows, columns=["ts", "value", "close"])
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("ts"), unit="ms"), name="datetime")
    returns = frame["value"].pct_change().fillna(0.0).rename("Strategy")
    if (
        symbols
    ):  # a symbol without a bar (a hole) earns nothing at that bar; nothing is forward-filled into a return
        close = pd.DataFrame(symbols, columns=["ts", "symbol", "close"]).pivot(index="ts", columns="symbol")[
            "close"
        ]
        moved = (close / close.ffill().shift(1) - 1.0).fillna(0.0).mean(axis=1)
        benchmark = pd.Series(moved.to_numpy(), index=frame.index, name="Equal weight")
    else:
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
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        held_rows = (db.execute("SELECT symbol, size FROM symbol_bars WHERE bar_ts=(SELECT MAX(bar_ts) FROM bars)")
                     .fetchall() if "symbol_bars" in tables else [])  # fmt: skip
    by_cid: dict[str, list[sqlite3.Row]] = {}
    for row in orders:
        by_cid.setdefault(row["cid"], []).append(row)
    fills_of: dict[str, list[sqlite3.Row]] = {}
    for row in fills:
        fills_of.setdefault(str(row["order_id"]), []).append(row)
    lines, problems = [], 0
    for intent in intents:
        stamp = pd.Timestamp(intent["bar_ts"], unit="ms")
        market = f"{intent['symbol']} " if "symbol" in intent.keys() and intent["symbol"] else ""
        lines.append(f"{intent['cid']}  bar {stamp:%Y-%m-%d %H:%M}  {market}{intent['side']} {intent['amount']:.8g} "
                     f"{intent['type']}  -> {intent['status']}" + (f" ({intent['reason']})" if intent["reason"] else ""))  # fmt: skip
        exchange_orders = by_cid.get(intent["cid"], [])
        if len(exchange_orders) > 1:
            problems += 1
            lines.append(f"    !! DUPLICATE: {len(exchange_orders)} exchange orders for one intent")
        if intent["status"] == "lost":
            problems += 1
            lines.append("    !! LOST: never reached the exchange and never re-sent")
        total = (
            sum(f["amount"] for f in fills_of.get(intent["cid"], [])) if not exchange_orders else 0.0
        )  # paper
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
    if held_rows:  # a universe session: each symbol's position against its own fills
        symbol_of = {i["cid"]: i["symbol"] for i in intents}
        for symbol, size in held_rows:
            held = sum(
                sign.get(f["side"], 0.0) * f["amount"] for f in fills if symbol_of.get(f["cid"]) == symbol
            )
            if abs(held - size) > 1e-9:
                problems += 1
                lines.append(
                    f"!! MISMATCH: journaled {symbol} position {size:.8g}, its fills sum to {held:.8g}"
                )
        last = None
    held = sum(sign.get(f["side"], 0.0) * f["amount"] for f in fills)
    if last is not None and abs(held - last[0]) > 1e-9:
        problems += 1
        lines.append(f"!! MISMATCH: journaled position {last[0]:.8g}, fills sum to {held:.8g}")
    lines.append(f"{len(intents)} intent(s), {len(orders)} exchange order(s), {len(fills)} fill(s), "
                 f"{problems} problem(s)")  # fmt: skip
    return lines, problems
