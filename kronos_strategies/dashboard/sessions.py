"""Read a paper session's SQLite journal without ever writing to it or holding it up.

Each read opens the file with ``mode=ro`` (SQLite refuses every write), reads everything inside one
short read transaction (a WAL snapshot: consistent across tables, and it never blocks the session's
writer) and closes it. Tables and columns are looked up first, so a journal from an older or newer
version (an extra table, a missing column) shows what it has instead of failing.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from kronos_model.errors import JournalUnreadable
from kronos_strategies.paper.journal import OPEN_STATES

from .runs import redact

ERROR_KINDS = ("error", "refit_failed", "unresolved", "rejected", "lost")
REFIT_KINDS = ("model_swap", "refit", "refit_started", "refit_failed")
ROW_LIMIT = 200  # newest fills, orders and events shown
MAX_POINTS = 5000  # equity points sent to the browser (older ones thinned)
BUSY_MS = 200  # a reader waits at most this long for a lock; a writer is never waited on in WAL mode


def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection (URI ``mode=ro``) that cannot write even by mistake."""
    if not path.is_file():
        raise JournalUnreadable(f"journal {path.name} does not exist (yet)")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                         timeout=BUSY_MS / 1000.0, check_same_thread=False)  # fmt: skip
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA query_only=1")
    return db


def _columns(db: sqlite3.Connection) -> dict[str, set[str]]:
    """Every table of the journal with its column names."""
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {t: {r[1] for r in db.execute(f'PRAGMA table_info("{t}")')} for t in tables}


def _rows(db: sqlite3.Connection, schema: dict[str, set[str]], table: str, order: str, *,
          where: str = "", args: tuple = (), limit: int | None = ROW_LIMIT, desc: bool = True) -> list[dict]:  # fmt: skip
    """Rows of ``table`` (newest first by ``order`` when ``desc``), [] when the table or column is absent."""
    cols = schema.get(table)
    if not cols or order not in cols:
        return []
    sql = f'SELECT * FROM "{table}" {where} ORDER BY "{order}" {"DESC" if desc else "ASC"}'
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_clean(dict(r)) for r in db.execute(sql, args)]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe values: non-finite floats and bytes become None, credential-like keys are dropped."""
    out = {}
    for key, value in redact(row).items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, bytes | memoryview):
            value = None
        out[key] = value
    return out


def _meta(db: sqlite3.Connection, schema: dict[str, set[str]]) -> dict[str, Any]:
    """The meta table as a dict; ``settings`` parsed and redacted."""
    if not {"key", "value"} <= schema.get("meta", set()):
        return {}
    meta: dict[str, Any] = {str(r[0]): r[1] for r in db.execute("SELECT key, value FROM meta")}
    if isinstance(meta.get("settings"), str):
        try:
            meta["settings"] = json.loads(meta["settings"])
        except json.JSONDecodeError:
            meta["settings"] = {}
    return redact(meta)


def _equity(db: sqlite3.Connection, schema: dict[str, set[str]]) -> dict[str, list]:
    """Equity after each processed bar (thinned to MAX_POINTS), with the bar's close when known."""
    cols = schema.get("equity", set())
    if not {"bar_ts", "value"} <= cols:
        return {"time": [], "value": [], "close": []}
    close = "b.close" if {"bar_ts", "close"} <= schema.get("bars", set()) else "NULL"
    join = "LEFT JOIN bars b USING (bar_ts)" if close != "NULL" else ""
    count = db.execute("SELECT COUNT(*) FROM equity").fetchone()[0]
    step = max(1, math.ceil(count / MAX_POINTS))
    rows = db.execute(
        f"SELECT bar_ts, value, {close} AS close FROM (SELECT *, ROW_NUMBER() OVER (ORDER BY bar_ts) AS n"
        f" FROM equity) e {join} WHERE (n - 1) % ? = 0 OR n = ? ORDER BY bar_ts",
        (step, count),
    ).fetchall()
    return {
        "time": [r[0] for r in rows],
        "value": [_finite(r[1]) for r in rows],
        "close": [_finite(r[2]) for r in rows],
    }


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _open_orders(db: sqlite3.Connection, schema: dict[str, set[str]]) -> list[dict]:
    """Intents still pending/open, with the exchange's view of the order when journaled."""
    intents = schema.get("intents", set())
    if not {"cid", "status"} <= intents:
        return []
    order = "created" if "created" in intents else "cid"
    rows = _rows(
        db,
        schema,
        "intents",
        order,
        where=f"WHERE status IN ({','.join('?' * len(OPEN_STATES))})",
        args=OPEN_STATES,
    )
    orders = schema.get("orders", set())
    if "cid" in orders and rows:
        marks = ",".join("?" * len(rows))
        seen = {}
        for r in db.execute(f"SELECT * FROM orders WHERE cid IN ({marks})", [r["cid"] for r in rows]):
            seen.setdefault(r["cid"], []).append(_clean(dict(r)))
        for row in rows:
            row["exchange"] = seen.get(row["cid"], [])
    return rows


def _status(meta: dict[str, Any], last_processed: float | None, events: list[dict]) -> str:
    """running / stopped / stale / new: from the last event and the age of the last processed bar."""
    kinds = [e.get("kind") for e in events]  # newest first
    if kinds and kinds[0] == "stop":
        return "stopped"
    if last_processed is None:
        return "starting" if kinds else "new"
    timeframe = (
        (meta.get("settings") or {}).get("timeframe") if isinstance(meta.get("settings"), dict) else None
    )
    seconds = _timeframe_seconds(timeframe) if isinstance(timeframe, str) else 60.0
    return "running" if time.time() - last_processed < max(3 * seconds, 30.0) else "stale"


def _timeframe_seconds(timeframe: str) -> float:
    """'1m' → 60, '4h' → 14400; unknown → 60."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}
    try:
        return float(int(timeframe[:-1]) * units[timeframe[-1]])
    except (ValueError, KeyError, IndexError):
        return 60.0


def read_session(path: Path) -> dict[str, Any]:
    """Status, last bar, position, open orders, fills, equity, forecasts, refits and errors of one journal."""
    try:
        with closing(connect_ro(path)) as db:
            db.execute("BEGIN")  # one snapshot for every table below
            try:
                return _snapshot(db)
            finally:
                db.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise JournalUnreadable(f"journal {path.name} cannot be read: {exc}") from None


def _snapshot(db: sqlite3.Connection) -> dict[str, Any]:
    """Everything ``read_session`` returns, inside the caller's read transaction."""
    schema = _columns(db)
    meta = _meta(db, schema)
    bars = _rows(db, schema, "bars", "bar_ts", limit=1)
    positions = _rows(db, schema, "positions", "bar_ts", limit=1)
    events = _rows(db, schema, "events", "id")
    fills = _rows(db, schema, "fills", "ts")
    last_processed = bars[0].get("processed") if bars else None
    settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    return {
        "meta": {k: v for k, v in meta.items() if k != "settings"},
        "settings": settings,
        "symbol": settings.get("symbol"),
        "status": _status(meta, last_processed, events),
        "last_bar": bars[0] if bars else None,
        "position": positions[0] if positions else None,
        "open_orders": _open_orders(db, schema),
        "orders": _rows(db, schema, "orders", "updated"),
        "fills": fills,
        "fill_count": db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] if "fills" in schema else 0,
        "equity": _equity(db, schema),
        "forecasts": _forecasts(db, schema),
        "refits": [e for e in events if e.get("kind") in REFIT_KINDS],
        "errors": [e for e in events if any(k in str(e.get("kind", "")) for k in ERROR_KINDS)],
        "events": events,
        "tables": sorted(schema),
    }


def _forecasts(db: sqlite3.Connection, schema: dict[str, set[str]]) -> list[dict]:
    """The newest journaled forecast per symbol, when the journal has a ``forecasts`` table (else [])."""
    cols = schema.get("forecasts", set())
    if "bar_ts" not in cols:
        return []
    rows = _rows(db, schema, "forecasts", "bar_ts", limit=50)
    latest: dict[str, dict] = {}
    for row in rows:
        latest.setdefault(str(row.get("symbol", "")), row)
    return list(latest.values())
