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
