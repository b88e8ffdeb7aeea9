"""SQLite (WAL) journal of a paper/sandbox/live session: intents, exchange orders, fills, bars, equity,
and the latest forecast per bar and symbol (the dashboard draws it as a fan).

An intent is written before its order is sent (write-ahead), so a session killed at any point can
look every unfinished intent up by its client order id on restart instead of sending it again.
Nothing secret is ever written: callers pass settings through :func:`public_settings` first.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intents (
    cid TEXT PRIMARY KEY, bar_ts INTEGER NOT NULL, side TEXT NOT NULL, type TEXT NOT NULL,
    amount REAL NOT NULL, price REAL, status TEXT NOT NULL, reason TEXT, created REAL NOT NULL, sent REAL,
    symbol TEXT);
CREATE TABLE IF NOT EXISTS orders (
    cid TEXT NOT NULL, order_id TEXT NOT NULL, status TEXT, amount REAL, filled REAL, average REAL,
    price REAL, updated REAL NOT NULL, PRIMARY KEY (cid, order_id));
CREATE TABLE IF NOT EXISTS fills (
    trade_id TEXT PRIMARY KEY, cid TEXT, order_id TEXT, ts INTEGER, side TEXT, amount REAL, price REAL,
    cost REAL, fee REAL, fee_currency TEXT);
CREATE TABLE IF NOT EXISTS bars (
    bar_ts INTEGER PRIMARY KEY, open REAL, high REAL, low REAL, close REAL, volume REAL, processed REAL);
CREATE TABLE IF NOT EXISTS positions (bar_ts INTEGER PRIMARY KEY, size REAL, price REAL);
CREATE TABLE IF NOT EXISTS equity (bar_ts INTEGER PRIMARY KEY, cash REAL, value REAL);
CREATE TABLE IF NOT EXISTS strategy_state (bar_ts INTEGER PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL, kind TEXT, message TEXT);
CREATE TABLE IF NOT EXISTS symbol_bars (
    bar_ts INTEGER NOT NULL, symbol TEXT NOT NULL, open REAL, high REAL, low REAL, close REAL, volume REAL,
    size REAL NOT NULL, price REAL NOT NULL, PRIMARY KEY (bar_ts, symbol));
CREATE TABLE IF NOT EXISTS forecasts (
    bar_ts INTEGER NOT NULL, symbol TEXT NOT NULL, quantiles TEXT NOT NULL, mean TEXT NOT NULL,
    PRIMARY KEY (bar_ts, symbol));
"""

OPEN_STATES = ("pending", "open")  # an intent in these states may still change on the exchange
_SECRET_WORDS = ("secret", "key", "password", "token", "passphrase")


@dataclass(frozen=True)
class ForecastFan:
    """One forecast as journaled: the last bar it saw (open ms), the symbol, close quantiles and mean per step."""

    bar_ts: int
    symbol: str
    quantiles: Mapping[float, Sequence[float]]
    mean: Sequence[float]


@dataclass(frozen=True)
class SymbolBar:
    """One symbol's part of a universe session's bar: its own candle (None when it has no bar then) and the
    position held after the bar."""

    symbol: str
    ohlcv: tuple[float, ...] | None
    size: float
    price: float


def public_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Drop anything that could be a credential before it is journaled or printed."""
    return {
        k: v
        for k, v in settings.items()
        if not any(w in k.lower() for w in _SECRET_WORDS) or k.endswith("_env")
    }


class Journal:
    """Append-mostly record of one session; re-opening the same file resumes it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self.db.executescript(_SCHEMA)
        if self.meta("session_id") is None:
            self.set_meta("session_id", secrets.token_hex(4))
            self.set_meta("created", str(time.time()))

    def _migrate(self) -> None:
        """Bring a journal written by an older version to the current schema (nothing is dropped)."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "intents" in tables:
            have = {r[1] for r in self.db.execute("PRAGMA table_info(intents)")}
            for column, kind in (("sent", "REAL"), ("symbol", "TEXT")):
                if column not in have:
                    self.db.execute(f"ALTER TABLE intents ADD COLUMN {column} {kind}")
        if "orders" in tables:
            keys = [r[1] for r in self.db.execute("PRAGMA table_info(orders)") if r[5]]
            if keys == ["cid"]:  # one row per client order id hid a duplicate exchange order
                with self.db:
                    self.db.execute("BEGIN")
                    self.db.execute("ALTER TABLE orders RENAME TO orders_v1")
                    self.db.execute(_SCHEMA.split(";")[2])
                    self.db.execute("INSERT INTO orders SELECT * FROM orders_v1 WHERE order_id IS NOT NULL")
                    self.db.execute("DROP TABLE orders_v1")

    def close(self) -> None:
        """Checkpoint and close the database."""
        self.db.close()

    # --- meta and events -----------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A stored setting, or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def set_settings(self, settings: Mapping[str, Any]) -> None:
        """Store the session settings, credentials removed."""
        self.set_meta("settings", json.dumps(public_settings(settings), default=str, sort_keys=True))

    @property
    def session_id(self) -> str:
        """Short random id fixed at creation; part of every client order id."""
        return str(self.meta("session_id"))

    def event(self, kind: str, message: str) -> None:
        """Log a session event (start, restart, reconciliation, model swap, error)."""
        self.db.execute(
            "INSERT INTO events(ts, kind, message) VALUES (?, ?, ?)", (time.time(), kind, message)
        )

    def events(self, kind: str | None = None) -> list[sqlite3.Row]:
        """Session events, oldest first, optionally only those of one kind."""
        if kind is None:
            return self.db.execute("SELECT * FROM events ORDER BY id").fetchall()
        return self.db.execute("SELECT * FROM events WHERE kind=? ORDER BY id", (kind,)).fetchall()

    # --- intents and orders --------------------------------------------------------------------------
    def record_intent(self, cid: str, bar_ts: int, side: str, otype: str, amount: float, price: float | None,
                      status: str = "pending", reason: str | None = None, symbol: str | None = None) -> None:  # fmt: skip
        """Write an order intent before anything is sent (``symbol``: which market, in a universe session)."""
        self.db.execute(
            "INSERT INTO intents(cid, bar_ts, side, type, amount, price, status, reason, created, symbol)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cid, bar_ts, side, otype, amount, price, status, reason, time.time(), symbol),
        )

    def intent(self, cid: str) -> sqlite3.Row | None:
        """The intent with this client order id."""
        return self.db.execute("SELECT * FROM intents WHERE cid=?", (cid,)).fetchone()

    def intents(self, states: tuple[str, ...] | None = None) -> list[sqlite3.Row]:
        """Intents in creation order, optionally only those in ``states``."""
        if states is None:
            return self.db.execute("SELECT * FROM intents ORDER BY created, cid").fetchall()
        marks = ",".join("?" * len(states))
        return self.db.execute(
            f"SELECT * FROM intents WHERE status IN ({marks}) ORDER BY created", states
        ).fetchall()

    def set_intent(self, cid: str, status: str, reason: str | None = None) -> None:
        """Move an intent to a new state (open, closed, canceled, rejected, lost)."""
        self.db.execute(
            "UPDATE intents SET status=?, reason=COALESCE(?, reason) WHERE cid=?", (status, reason, cid)
        )

    def mark_sent(self, cid: str, when: float) -> None:
        """Wall time of the latest attempt to place this intent (a restart waits out its recvWindow)."""
        self.db.execute("UPDATE intents SET sent=? WHERE cid=?", (when, cid))

    def record_order(self, cid: str, order: Mapping[str, Any]) -> bool:
        """Upsert the exchange's view of one exchange order of ``cid`` (ccxt unified order dict).

        Every exchange order id is kept; True when ``cid`` already had a *different* exchange order, i.e.
        the intent was executed twice (the caller raises the alarm).
        """
        order_id = str(order.get("id"))
        others = self.db.execute(
            "SELECT COUNT(*) FROM orders WHERE cid=? AND order_id<>?", (cid, order_id)
        ).fetchone()[0]
        known = self.db.execute("SELECT 1 FROM orders WHERE cid=? AND order_id=?", (cid, order_id)).fetchone()
        self.db.execute(
            "INSERT INTO orders(cid, order_id, status, amount, filled, average, price, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(cid, order_id) DO UPDATE SET status=excluded.status,"
            " amount=excluded.amount, filled=excluded.filled, average=excluded.average, price=excluded.price,"
            " updated=excluded.updated",
            (cid, order_id, order.get("status"), order.get("amount"), order.get("filled"),
             order.get("average"), order.get("price"), time.time()),
        )  # fmt: skip
        if others and known is None:
            self.event("duplicate", f"intent {cid} has a second exchange order {order_id}: executed twice")
            return True
        return False

    def duplicates(self) -> list[str]:
        """Client order ids with more than one exchange order (each one an intent executed twice)."""
        rows = self.db.execute("SELECT cid FROM orders GROUP BY cid HAVING COUNT(*) > 1 ORDER BY cid")
        return [r[0] for r in rows]

    def cid_for_order(self, order_id: str, symbol: str | None = None) -> str | None:
        """Client order id of an exchange order id we placed (of ``symbol`` in a universe session: exchanges
        number orders per symbol)."""
        if symbol is None:
            row = self.db.execute("SELECT cid FROM orders WHERE order_id=?", (str(order_id),)).fetchone()
        else:
            row = self.db.execute(
                "SELECT o.cid FROM orders o JOIN intents i USING (cid) WHERE o.order_id=? AND i.symbol=?",
                (str(order_id), symbol),
            ).fetchone()
        return None if row is None else row[0]

    def orders(self) -> list[sqlite3.Row]:
        """Every exchange order recorded."""
        return self.db.execute("SELECT * FROM orders ORDER BY CAST(order_id AS INTEGER), order_id").fetchall()

    # --- fills ---------------------------------------------------------------------------------------
    def record_fill(self, trade_id: str, cid: str, order_id: str, ts: int, side: str, amount: float, price: float,
                    fee: float, fee_currency: str | None) -> bool:  # fmt: skip
        """Store a fill once; False when this trade id was already journaled."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO fills(trade_id, cid, order_id, ts, side, amount, price, cost, fee, fee_currency)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (str(trade_id), cid, str(order_id), ts, side, amount, price, amount * price, fee, fee_currency),
        )
        return cur.rowcount == 1

    def fills(self, cid: str | None = None) -> list[sqlite3.Row]:
        """Fills, oldest first, optionally of one order."""
        if cid is None:
            return self.db.execute("SELECT * FROM fills ORDER BY ts, trade_id").fetchall()
        return self.db.execute("SELECT * FROM fills WHERE cid=? ORDER BY ts, trade_id", (cid,)).fetchall()

    def max_trade_id(self, symbol: str | None = None) -> int:
        """Largest numeric exchange trade id journaled (0 when none): where to resume fetching fills; a universe
        session's fills are stored as ``symbol:id`` (exchanges number trades per symbol)."""
        if symbol is None:
            row = self.db.execute(
                "SELECT MAX(CAST(trade_id AS INTEGER)) FROM fills WHERE trade_id GLOB '[0-9]*'"
            ).fetchone()
        else:
            row = self.db.execute(
                "SELECT MAX(CAST(substr(trade_id, ?) AS INTEGER)) FROM fills WHERE substr(trade_id, 1, ?) = ?",
                (len(symbol) + 2, len(symbol) + 1, f"{symbol}:"),
            ).fetchone()
        return int(row[0] or 0)

    # --- bars, positions, equity ---------------------------------------------------------------------
    def record_bar(self, bar_ts: int, ohlcv: tuple[float, ...], *, cash: float, value: float, size: float,
                   price: float, state: Mapping[str, Any] | None = None,
                   forecast: ForecastFan | None = None, symbols: Sequence[SymbolBar] = ()) -> None:  # fmt: skip
        """Mark a bar processed with the position, equity, strategy state and forecast after it, atomically;
        a universe session adds each symbol's candle and position (``symbols``) to the same transaction."""
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO bars VALUES (?, ?, ?, ?, ?, ?, ?)", (bar_ts, *ohlcv, time.time())
            )
            self.db.execute("INSERT OR REPLACE INTO positions VALUES (?, ?, ?)", (bar_ts, size, price))
            self.db.execute("INSERT OR REPLACE INTO equity VALUES (?, ?, ?)", (bar_ts, cash, value))
            if state is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO strategy_state VALUES (?, ?)", (bar_ts, json.dumps(dict(state)))
                )
            if forecast is not None:
                self._insert_forecast(forecast)
            for row in symbols:
                ohlcv = row.ohlcv if row.ohlcv is not None else (None,) * 5
                self.db.execute(
                    "INSERT OR REPLACE INTO symbol_bars VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (bar_ts, row.symbol, *ohlcv, row.size, row.price),
                )

    def holdings(self, at: int | None = None) -> dict[str, tuple[float, float]]:
        """Each symbol's (size, price) after the last processed bar (or the bar opening at ``at``) of a universe
        session; empty for a one-symbol session."""
        rows = self.db.execute(
            "SELECT symbol, size, price FROM symbol_bars WHERE bar_ts=COALESCE(?, (SELECT MAX(bar_ts) FROM bars))",
            (at,),
        )
        return {r[0]: (float(r[1]), float(r[2])) for r in rows}

    def symbol_bars(self, symbol: str | None = None) -> list[sqlite3.Row]:
        """A universe session's per-symbol rows (candle, position after it), oldest first."""
        if symbol is None:
            return self.db.execute("SELECT * FROM symbol_bars ORDER BY bar_ts, symbol").fetchall()
        return self.db.execute(
            "SELECT * FROM symbol_bars WHERE symbol=? ORDER BY bar_ts", (symbol,)
        ).fetchall()

    def bar_count(self) -> int:
        """Number of bars processed so far (over every run of the session)."""
        return int(self.db.execute("SELECT COUNT(*) FROM bars").fetchone()[0])

    def record_forecast(self, forecast: ForecastFan) -> None:
        """Store one forecast fan on its own (a session journals it with its bar via ``record_bar``)."""
        self._insert_forecast(forecast)

    def _insert_forecast(self, fan: ForecastFan) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO forecasts VALUES (?, ?, ?, ?)",
            (fan.bar_ts, fan.symbol, json.dumps({f"{q:g}": list(v) for q, v in fan.quantiles.items()}),
             json.dumps(list(fan.mean))),
        )  # fmt: skip

    def forecasts(self, symbol: str | None = None) -> list[sqlite3.Row]:
        """Journaled forecast fans, oldest first, optionally of one symbol."""
        if symbol is None:
            return self.db.execute("SELECT * FROM forecasts ORDER BY bar_ts, symbol").fetchall()
        return self.db.execute("SELECT * FROM forecasts WHERE symbol=? ORDER BY bar_ts", (symbol,)).fetchall()

    def settle_last_bar(self, *, cash: float, value: float, size: float, price: float,
                        symbols: Mapping[str, tuple[float, float]] | None = None) -> None:  # fmt: skip
        """Overwrite the last bar's position and equity with the state after the session's final fills
        (``symbols``: each symbol's (size, price) in a universe session)."""
        last = self.last_bar()
        if last is None:
            return
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT OR REPLACE INTO positions VALUES (?, ?, ?)", (last, size, price))
            self.db.execute("INSERT OR REPLACE INTO equity VALUES (?, ?, ?)", (last, cash, value))
            for symbol, (held, paid) in (symbols or {}).items():
                self.db.execute(
                    "UPDATE symbol_bars SET size=?, price=? WHERE bar_ts=? AND symbol=?",
                    (held, paid, last, symbol),
                )

    def strategy_state(self, at: int | None = None) -> dict[str, Any] | None:
        """The strategy's own state (side, targets) after the last processed bar (or the bar opening at ``at``),
        when it journals one."""
        row = self.db.execute(
            "SELECT state FROM strategy_state WHERE bar_ts=COALESCE(?, (SELECT MAX(bar_ts) FROM bars))", (at,)
        ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def last_bar(self) -> int | None:
        """Open time (ms) of the last processed bar, or None for a new session."""
        row = self.db.execute("SELECT MAX(bar_ts) FROM bars").fetchone()
        return None if row[0] is None else int(row[0])

    def first_intent_bar(self) -> int | None:
        """Open time (ms) of the earliest bar an intent was issued on, or None."""
        row = self.db.execute("SELECT MIN(bar_ts) FROM intents").fetchone()
        return None if row[0] is None else int(row[0])

    def last_state(self) -> tuple[float, float, float] | None:
        """(cash, position size, position price) after the last processed bar."""
        row = self.db.execute(
            "SELECT e.cash, p.size, p.price FROM equity e JOIN positions p USING (bar_ts) ORDER BY bar_ts DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (float(row[0]), float(row[1]), float(row[2]))

    def equity(self) -> list[sqlite3.Row]:
        """Equity snapshots, oldest first."""
        return self.db.execute("SELECT * FROM equity ORDER BY bar_ts").fetchall()
