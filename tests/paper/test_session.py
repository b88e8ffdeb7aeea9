"""Whole sessions against the emulator with the real ccxt client: faults, a SIGKILL and restart, parity."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import backtrader as bt
import pytest

from kronos_strategies.emulator import ExchangeEmulator, FaultPlan, load_candles
from kronos_strategies.errors import ConfigError
from kronos_strategies.exchange import download_history
from kronos_strategies.exchange.client import ExchangeAuthError
from kronos_strategies.paper.journal import Journal
from kronos_strategies.paper.session import LiveTradingRefused, PaperSession
from kronos_strategies.strategy import configure_broker

from .helpers import API_KEY, ENV, SECRET, TF_MS, Churn, SmaCross, exchange_client, fast_config

FAULTS = FaultPlan(seed=7, latency=0.002, timeout=0.004, timeout_delay=0.35, error=0.01, rate_limit=0.01,
                   retry_after=0.02, drop=0.01, disconnect=0.01)  # fmt: skip
_STATUS = {"FILLED": "closed", "CANCELED": "canceled", "NEW": "open", "PARTIALLY_FILLED": "open"}


def assert_reconciled(emu: ExchangeEmulator, journal_path: Path, cash0: float) -> None:
    """The exchange's orders and fills equal the journal's; balances follow from the fills to the fee."""
    eng = emu.engine
    journal = Journal(journal_path)
    by_cid = Counter(o.client_id for o in eng.orders)
    assert by_cid and max(by_cid.values()) == 1, "a client order id was sent twice"
    intents = {r["cid"]: r for r in journal.intents()}
    orders = {r["cid"]: r for r in journal.orders()}
    assert set(orders) == set(by_cid)
    for order in eng.orders:
        assert orders[order.client_id]["order_id"] == str(order.order_id)
        assert intents[order.client_id]["status"] == _STATUS[order.status]
    assert not {c for c, r in intents.items() if r["status"] in ("rejected", "lost")} & set(by_cid)
    fills = {f["trade_id"]: f for f in journal.fills()}
    assert set(fills) == {str(t.trade_id) for t in eng.trades}, "a fill was lost or invented"
    cid_of = {o.order_id: o.client_id for o in eng.orders}
    for trade in eng.trades:
        fill = fills[str(trade.trade_id)]
        assert fill["cid"] == cid_of[trade.order_id]
        assert fill["amount"] == pytest.approx(trade.qty) and fill["price"] == pytest.approx(
            trade.price, rel=1e-9
        )
    sign = {"buy": 1.0, "sell": -1.0}
    cash = cash0 - sum(sign[f["side"]] * f["amount"] * f["price"] + f["fee"] for f in fills.values())
    coins = sum(sign[f["side"]] * f["amount"] for f in fills.values())
    assert eng.free["USDT"] + eng.locked["USDT"] == pytest.approx(cash, rel=1e-9)
    assert eng.free["BTC"] + eng.locked["BTC"] == pytest.approx(coins, abs=1e-9)
    journal.close()


def test_sandbox_session_under_faults_reconciles(emulator, tmp_path):
    emu = emulator(start_index=100, bar_seconds=0.02, liquidity=0.01, faults=FAULTS)
    result = PaperSession(fast_config(emu.url, tmp_path / "j.sqlite", max_bars=120), Churn, env=ENV).run()
    assert result.bars == 120 and sum(emu.fault_counts.values()) >= 10
    fills_per_order = Counter(t.order_id for t in emu.engine.trades)
    # how much churn a run gets depends on timing (a timed-out POST waits out recvWindow while bars pass):
    # ask for enough of it, and for a partial fill (several fills of one order, or one cancelled part-filled)
    partial = max(fills_per_order.values()) >= 2 or any(0 < o.executed < o.qty for o in emu.engine.orders)
    assert len(emu.engine.orders) >= 30 and partial
    assert any(o.status == "CANCELED" for o in emu.engine.orders)
    assert_reconciled(emu, tmp_path / "j.sqlite", 10_000.0)
    broker = result.strategy.broker
    assert broker.getcash() == pytest.approx(emu.engine.free["USDT"] + emu.engine.locked["USDT"], rel=1e-9)
    assert broker.getposition(result.strategy.data).size == pytest.approx(emu.engine.free["BTC"], abs=1e-9)


def _processed(journal: Path) -> list[tuple[int, float]]:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            return db.execute("SELECT bar_ts, processed FROM bars ORDER BY bar_ts").fetchall()
    except sqlite3.OperationalError:
        return []


def _started(journal: Path) -> bool:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM events WHERE kind='start'").fetchone()[0] > 0
    except sqlite3.OperationalError:
        return False


@pytest.mark.slow  # a fast representative stays in the default tier
def test_killed_session_restarts_without_duplicates_or_holes(emulator, candles_csv, tmp_path):
    csv = load_candles(candles_csv)
    emu = emulator(start_index=100, bar_seconds=1e6, liquidity=0.03, faults=FAULTS)  # paused until started
    journal = tmp_path / "killed.sqlite"
    until = dt.datetime.fromtimestamp(csv.index[170] / 1000, tz=dt.timezone.utc).isoformat()
    cmd = [sys.executable, str(Path(__file__).with_name("child_session.py")), emu.url, str(journal), until]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not _started(journal) and time.monotonic() < deadline:
        time.sleep(0.05)
    emu.engine.clock.set_speed(TF_MS / 1000 / 0.04)  # the child is up: replay one candle per 40 ms
    while len(_processed(journal)) < 12 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]  # still mid-run
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = len(_processed(journal))
    assert killed_at >= 12
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr[-2000:]
    bars = _processed(journal)
    stamps = [b[0] for b in bars]
    assert stamps[-1] == csv.index[170] and len(bars) > killed_at
    assert stamps == list(range(stamps[0], stamps[-1] + TF_MS, TF_MS))  # no hole
    processed_at = [b[1] for b in bars]
    assert processed_at == sorted(processed_at)  # no bar processed again after a later one
    assert_reconciled(emu, journal, 10_000.0)


def test_paper_mode_trades_like_a_backtest_on_the_same_candles(emulator, tmp_path):
    emu = emulator(start_index=100, bar_seconds=0.02)
    params = {"fast": 3, "slow": 8, "stake": 1.0}
    config = fast_config(emu.url, tmp_path / "p.sqlite", mode="paper", warmup=7, max_bars=150, slippage=0.001)
    paper = PaperSession(config, SmaCross, params).run().strategy
    assert emu.engine.orders == []  # paper mode sends nothing
    stamps = [b[0] for b in _processed(tmp_path / "p.sqlite")]
    bars = download_history(exchange_client(emu.url), "1m", stamps[0] - 7 * TF_MS, stamps[-1] + TF_MS)
    assert len(bars) == len(stamps) + 7
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=bars))
    configure_broker(cerebro, cash=config.cash, commission=config.commission, slippage=config.slippage)
    cerebro.addstrategy(SmaCross, **params)
    backtest = cerebro.run()[0]
    completed = [e for e in paper.events if e[0] == "Completed"]
    assert len(completed) >= 6
    assert paper.events == backtest.events
    assert paper.broker.getvalue() == pytest.approx(backtest.broker.getvalue(), rel=1e-12)


def test_live_needs_the_yaml_and_the_flag(tmp_path):
    with pytest.raises(LiveTradingRefused, match="--live"):
        PaperSession(fast_config("http://127.0.0.1:9", tmp_path / "x", mode="live"), SmaCross, env=ENV)
    with pytest.raises(LiveTradingRefused, match="mode: live"):
        PaperSession(
            fast_config("http://127.0.0.1:9", tmp_path / "x"), SmaCross, env=ENV, live_confirmed=True
        )


def test_missing_keys_name_the_environment_variable(tmp_path):
    with pytest.raises(ConfigError, match="KRONOS_BT_API_SECRET"):
        PaperSession(
            fast_config("http://127.0.0.1:9", tmp_path / "x"), SmaCross, env={"KRONOS_BT_API_KEY": "k"}
        )


def test_the_secret_never_reaches_logs_output_or_journal(emulator, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    emu = emulator(faults=FaultPlan(seed=2, error=0.05, disconnect=0.05, rate_limit=0.05, retry_after=0.01))
    PaperSession(fast_config(emu.url, tmp_path / "s.sqlite", max_bars=15), Churn, env=ENV).run()
    wrong = ENV | {"KRONOS_BT_API_SECRET": "wrong-secret-ab12cd"}
    with pytest.raises(ExchangeAuthError) as info:
        PaperSession(fast_config(emu.url, tmp_path / "s2.sqlite"), Churn, env=wrong).run()
    out = capsys.readouterr()
    text = caplog.text + out.out + out.err + str(info.value)
    assert "retrying" in caplog.text  # the faults were logged ...
    for secret in (SECRET, API_KEY, "wrong-secret-ab12cd"):  # ... without credentials
        assert secret not in text
        for path in tmp_path.glob("s*.sqlite*"):
            assert secret.encode() not in path.read_bytes()
