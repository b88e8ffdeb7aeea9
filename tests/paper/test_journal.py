"""Journal: WAL, write-once fills, resume points, no credentials; client order ids."""

from __future__ import annotations

import re

from kronos_strategies.paper.broker import make_cid
from kronos_strategies.paper.journal import Journal, public_settings


def test_journal_is_wal_and_fills_are_written_once(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal.record_fill("7", "c1", "1", 0, "buy", 0.5, 100.0, 0.05, "USDT") is True
    assert journal.record_fill("7", "c1", "1", 0, "buy", 0.5, 100.0, 0.05, "USDT") is False
    assert journal.max_trade_id() == 7 and len(journal.fills()) == 1


def test_reopening_resumes_after_the_last_bar(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    sid = journal.session_id
    assert journal.last_bar() is None and journal.last_state() is None
    journal.record_bar(60_000, (1, 2, 0.5, 1.5, 10), cash=90.0, value=105.0, size=1.0, price=1.2)
    journal.record_bar(120_000, (1, 2, 0.5, 1.5, 10), cash=80.0, value=104.0, size=2.0, price=1.3)
    journal.close()
    again = Journal(tmp_path / "j.sqlite")
    assert again.session_id == sid
    assert again.last_bar() == 120_000 and again.last_state() == (80.0, 2.0, 1.3)


def test_settings_lose_anything_that_looks_like_a_credential():
    clean = public_settings({"symbol": "BTC/USDT", "api_key": "k", "secret": "s", "api_key_env": "ENV_NAME",
                             "password": "p"})  # fmt: skip
    assert clean == {"symbol": "BTC/USDT", "api_key_env": "ENV_NAME"}


def test_client_order_ids_are_deterministic_and_binance_safe():
    cid = make_cid("0a1b2c3d", 1_704_067_200_000, 3)
    assert cid == make_cid("0a1b2c3d", 1_704_067_200_000, 3) != make_cid("0a1b2c3d", 1_704_067_200_000, 4)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,36}", cid)


def test_every_exchange_order_of_an_intent_is_kept_also_in_an_old_journal(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the schema before issue 11: one row per client order id
        db.execute(
            "CREATE TABLE orders (cid TEXT PRIMARY KEY, order_id TEXT, status TEXT, amount REAL, filled REAL,"
            " average REAL, price REAL, updated REAL NOT NULL)"
        )
        db.execute("INSERT INTO orders VALUES ('c1', '11', 'closed', 1.0, 1.0, 100.0, NULL, 0)")
        db.execute(
            "CREATE TABLE intents (cid TEXT PRIMARY KEY, bar_ts INTEGER NOT NULL, side TEXT NOT NULL, type TEXT"
            " NOT NULL, amount REAL NOT NULL, price REAL, status TEXT NOT NULL, reason TEXT, created REAL NOT NULL)"
        )
    journal = Journal(path)
    assert journal.record_order("c1", {"id": 11, "status": "closed", "filled": 1.0}) is False  # same order
    assert journal.record_order("c1", {"id": 12, "status": "closed", "filled": 1.0}) is True  # executed twice
    assert [r["order_id"] for r in journal.orders()] == ["11", "12"]
    assert journal.duplicates() == ["c1"] and "executed twice" in journal.events("duplicate")[0]["message"]
    journal.record_intent("c2", 60_000, "buy", "market", 1.0, None)
    journal.mark_sent("c2", 123.0)
    assert journal.intent("c2")["sent"] == 123.0
    journal.close()


def test_the_strategy_state_is_read_at_the_resume_bar(tmp_path):
    journal = Journal(tmp_path / "s.sqlite")
    for ts, side in ((60_000, 1), (120_000, 0)):
        journal.record_bar(
            ts, (1, 1, 1, 1, 1), cash=1.0, value=1.0, size=0.0, price=0.0, state={"side": side}
        )
    assert journal.strategy_state() == {"side": 0}
    assert journal.strategy_state(at=60_000) == {"side": 1}
    journal.close()
