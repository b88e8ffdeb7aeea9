"""Fault-and-kill soak: the shipped threshold strategy on the emulator with seeded faults, candle holes and
repeated SIGKILL restarts (some inside order placement). Afterwards: no lost intent, no duplicated order, and
the journal's position equals the exchange's after every processed bar. Prints the table of runs."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from kronos_strategies.emulator import (
    ExchangeEmulator,
    FaultPlan,
    MarketRules,
    MatchingEngine,
    ReplayClock,
    load_candles,
)
from kronos_strategies.paper.journal import Journal

from .helpers import API_KEY, SECRET, TF_MS, write_candles

FAULTS = FaultPlan(seed=11, latency=0.002, timeout=0.03, timeout_delay=0.35, error=0.03, rate_limit=0.02,
                   retry_after=0.02, drop=0.02, disconnect=0.01, late=0.03, late_delay=0.45)  # fmt: skip
HOLES = (range(140, 145), range(171, 174))
BAR_S = 0.3
KILLS = 6


def _query(journal: Path, sql: str) -> list:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def _kill_when(child: subprocess.Popen, journal: Path, mode: str, rng: random.Random) -> str:
    """SIGKILL the child inside order placement (a pending intent) or after a few more bars; say which."""
    start_bars, born = len(_query(journal, "SELECT bar_ts FROM bars")), time.time()
    target = start_bars + rng.randint(3, 9)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if mode == "placing" and _query(
            journal, f"SELECT cid FROM intents WHERE status='pending' AND created>{born}"
        ):
            child.send_signal(signal.SIGKILL)
            return "kill -9 with an intent pending"
        if mode == "bars" and len(_query(journal, "SELECT bar_ts FROM bars")) >= target:
            time.sleep(rng.uniform(0.0, BAR_S))  # anywhere inside the next bar
            child.send_signal(signal.SIGKILL)
            return "kill -9 at a random moment"
        time.sleep(0.002)
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
        return "kill -9 (timed out waiting)"
    return f"exited by itself (rc {child.returncode})"


@pytest.mark.slow
def test_fault_and_kill_soak(tmp_path):
    full = write_candles(tmp_path / "full.csv", n=260, seed=5)
    frame = pd.read_csv(full).drop(index=[i for hole in HOLES for i in hole])
    frame.to_csv(tmp_path / "holed.csv", index=False)
    candles = load_candles(tmp_path / "holed.csv")
    clock = ReplayClock(
        int(candles.index[100]), TF_MS / 1000.0 / BAR_S, now=time.time
    )  # wall time: maps to rows
    engine = MatchingEngine(candles, TF_MS, clock, MarketRules(), {"USDT": 10_000.0, "BTC": 0.0})
    emu = ExchangeEmulator(engine, api_key=API_KEY, secret=SECRET, faults=FAULTS, interval="1m").start()
    journal = tmp_path / "soak.sqlite"
    end = int(candles.index[235])
    until = dt.datetime.fromtimestamp(end / 1000, tz=dt.timezone.utc).isoformat()
    cmd = [sys.executable, str(Path(__file__).with_name("soak_child.py")), emu.url, str(journal), until]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    rng = random.Random(3)
    runs = []
    try:
        for run in range(KILLS + 1):
            before_bars = len(_query(journal, "SELECT bar_ts FROM bars"))
            before_orders = len(engine.orders)
            log = (tmp_path / f"run{run}.log").open("w")
            child = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            if run < KILLS:
                how = _kill_when(child, journal, "placing" if run % 2 == 0 else "bars", rng)
            else:
                child.wait(timeout=300)
                how = f"ran to the end (rc {child.returncode})"
                assert child.returncode == 0, (tmp_path / f"run{run}.log").read_text()[-3000:]
            child.wait()
            runs.append((run, how, len(_query(journal, "SELECT bar_ts FROM bars")) - before_bars,
                         len(engine.orders) - before_orders, sum(emu.fault_counts.values())))  # fmt: skip
    finally:
        emu.stop()

    print("\nrun | how it ended                     | bars | exchange orders | faults so far")
    for run, how, bars, orders, faults in runs:
        print(f"{run:>3} | {how:<32} | {bars:>4} | {orders:>15} | {faults:>13}")
    print(f"faults by kind: {dict(emu.fault_counts)}")

    kills = sum(1 for r in runs if r[1].startswith("kill -9"))
    assert kills >= 5 and sum(1 for r in runs if "pending" in r[1]) >= 1
    j = Journal(journal)
    try:
        intents = j.intents()
        bar_rows = j.db.execute(
            "SELECT b.bar_ts, b.processed, p.size FROM bars b JOIN positions p USING (bar_ts) ORDER BY bar_ts"
        ).fetchall()
        duplicates = j.duplicates()
    finally:
        j.close()
    stamps = [r[0] for r in bar_rows]
    assert len(stamps) >= 80 and stamps == [int(t) for t in candles.index if stamps[0] <= t <= end]
    statuses = Counter(r["status"] for r in intents)
    print(f"intents by final status: {dict(statuses)}; exchange orders {len(engine.orders)}")
    assert statuses["lost"] == 0 and statuses["pending"] == 0 and statuses["open"] == 0
    by_cid = Counter(o.client_id for o in engine.orders)
    assert max(by_cid.values()) == 1 and not duplicates, "an intent was executed twice"
    assert set(by_cid) == {r["cid"] for r in intents if r["status"] == "closed"}
    sign = {True: 1.0, False: -1.0}
    mismatched = []
    for ts, processed, size in bar_rows:  # the exchange's position when the row was written
        market = clock._start_ms + (processed - clock._wall0) * clock._speed * 1000.0
        held = sum(sign[t.is_buyer] * t.qty for t in engine.trades if t.time <= market)
        if abs(held - size) > 1e-9:
            mismatched.append((ts, size, held))
    print(f"bars whose journaled position differs from the exchange's: {len(mismatched)} {mismatched[:5]}")
    assert not mismatched
    assert engine.free["BTC"] + engine.locked["BTC"] == pytest.approx(bar_rows[-1][2], abs=1e-9)
