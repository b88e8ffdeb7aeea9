"""Does watching a paper session in the dashboard slow the session down? Bar-loop latency with and without.

One paper session (the test suite's ``Churn`` strategy: an order nearly every bar) trades against the
project's exchange emulator on 127.0.0.1 three times, each on a fresh journal:

* ``alone``     no reader;
* ``dashboard`` a ``kronos-bt dashboard`` process serving the journal, polled over HTTP by another
  process every ``--poll`` seconds (default 0.25 s: eight browser tabs at the page's 2 s refresh);
* ``hammer``    another process reading the whole session snapshot in a loop with no pause (worst case).

Per bar it prints the **bar delay** (journal ``processed`` time minus the wall time at which the emulator
closed the bar: fetch, strategy, orders, journal write) and the time spent in ``Journal.record_bar``
(the write transaction a reader could hold up). Readers run in their own processes, as the dashboard does.

    python benchmarks/bench_dashboard.py                 # 150 bars of 0.1 s per mode
    python benchmarks/bench_dashboard.py --bars 300 --bar-seconds 0.05
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kronos_strategies.emulator import (  # noqa: E402
    ExchangeEmulator,  # noqa: E402
    MarketRules,
    MatchingEngine,
    ReplayClock,
    load_candles,
)
from kronos_strategies.paper.journal import Journal  # noqa: E402
from kronos_strategies.paper.session import PaperSession  # noqa: E402
from tests.paper.helpers import API_KEY, ENV, SECRET, TF_MS, Churn, fast_config, write_candles  # noqa: E402

HAMMER = """
import sys, time
from pathlib import Path
from kronos_strategies.dashboard.sessions import JournalUnreadable, read_session
path, n = Path(sys.argv[1]), 0
while True:
    try:
        read_session(path); n += 1
    except JournalUnreadable:
        time.sleep(0.01)
"""
POLL = """
import sys, time, urllib.request
url, every = sys.argv[1], float(sys.argv[2])
while True:
    try:
        urllib.request.urlopen(url, timeout=5).read()
    except OSError:
        pass
    time.sleep(every)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _readers(mode: str, journal: Path, poll: float) -> list[subprocess.Popen]:
    """Start the reader processes of ``mode`` (none for 'alone')."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    if mode == "hammer":
        return [subprocess.Popen([sys.executable, "-c", HAMMER, str(journal)], env=env)]
    if mode != "dashboard":
        return []
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "kronos_strategies.cli", "dashboard", "--runs", str(journal.parent),
                               "--journal", str(journal), "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/session/0"
    poller = subprocess.Popen([sys.executable, "-c", POLL, url, str(poll)], env=env)
    return [server, poller]


def run_mode(
    mode: str, candles: Path, bars: int, bar_seconds: float, poll: float, work: Path
) -> dict[str, float]:
    """One session in ``mode``; bar delays and record_bar times in milliseconds."""
    journal = work / f"{mode}.sqlite"
    frame = load_candles(candles)
    start = 100
    wall0: list[float] = []

    def now() -> float:
        t = time.time()
        wall0.append(t) if not wall0 else None
        return t

    speed = TF_MS / 1000.0 / bar_seconds
    clock = ReplayClock(int(frame.index[start]), speed, now=now)
    engine = MatchingEngine(frame, TF_MS, clock, MarketRules(), {"USDT": 10_000.0, "BTC": 0.0})
    emu = ExchangeEmulator(engine, api_key=API_KEY, secret=SECRET, interval="1m").start()
    Journal(journal).close()  # the readers find the file from the start
    writes: list[float] = []
    original = Journal.record_bar

    def timed(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        t = time.perf_counter()
        original(self, *args, **kwargs)
        writes.append(1000.0 * (time.perf_counter() - t))

    readers = _readers(mode, journal, poll)
    Journal.record_bar = timed
    try:
        time.sleep(1.0 if readers else 0.0)  # let the readers start before the first bar
        PaperSession(
            fast_config(emu.url, journal, mode="paper", max_bars=bars, warmup=20), Churn, env=ENV
        ).run()
    finally:
        Journal.record_bar = original
        for proc in readers:
            proc.terminate()
            proc.wait(timeout=10)
        emu.stop()
    db = Journal(journal)
    rows = db.db.execute("SELECT bar_ts, processed FROM bars ORDER BY bar_ts").fetchall()
    fills = len(db.fills())
    db.close()
    start_ms = int(frame.index[start])
    delays = [1000.0 * (p - (wall0[0] + (ts + TF_MS - start_ms) / speed / 1000.0)) for ts, p in rows]
    delays = delays[5:]  # the first bars are the warm-up catching up, not the loop
    return {"bars": len(rows), "fills": fills, **_stats("delay", delays), **_stats("write", writes)}


def _stats(name: str, values: list[float]) -> dict[str, float]:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return {f"{name}_p50": statistics.median(values), f"{name}_p95": p95, f"{name}_max": values[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bars", type=int, default=150)
    parser.add_argument("--bar-seconds", type=float, default=0.1)
    parser.add_argument("--poll", type=float, default=0.25, help="dashboard mode: seconds between HTTP polls")
    parser.add_argument("--modes", default="alone,dashboard,hammer")
    args = parser.parse_args()
    print(
        f"paper session, Churn strategy, {args.bars} bars of {args.bar_seconds:g} s; {os.cpu_count()} CPUs; ms"
    )
    print(
        f"{'mode':<10} {'bars':>5} {'fills':>6} {'delay p50':>10} {'p95':>8} {'max':>8} {'write p50':>10} {'p95':>7} {'max':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        candles = write_candles(Path(tmp) / "candles.csv", n=100 + args.bars + 60, seed=0)
        for mode in args.modes.split(","):
            r = run_mode(mode, candles, args.bars, args.bar_seconds, args.poll, Path(tmp))
            print(f"{mode:<10} {r['bars']:>5} {r['fills']:>6} {r['delay_p50']:>10.1f} {r['delay_p95']:>8.1f} "
                  f"{r['delay_max']:>8.1f} {r['write_p50']:>10.2f} {r['write_p95']:>7.2f} {r['write_max']:>7.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
