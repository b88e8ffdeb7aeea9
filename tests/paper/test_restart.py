"""Restarts: resume counted in bars across candle holes, with the strategy's state, deciding as without a stop.

Issue 11 bugs 4 and 5: the restart point was computed in time (a hole in the exchange's candles left the
indicator short of history, so the first bars after the restart were never processed) and the strategy
restarted flat while the account held a position (the next exit was never sent).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import backtrader as bt
import pandas as pd
import pytest

from kronos_strategies.emulator import load_candles
from kronos_strategies.exchange import download_history
from kronos_strategies.paper.journal import Journal
from kronos_strategies.paper.session import PaperSession
from kronos_strategies.strategy import configure_broker, load_object

from .helpers import ENV, PriceSignal, exchange_client, fast_config, recording, start_emulator, write_candles

HOLE = range(130, 140)  # candles the exchange never published (maintenance)
WARMUP = 11  # exactly PriceSignal's minimum period, as the CLI's default warm-up equals the lookback


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat()


def _stamps(journal: Path) -> list[int]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT bar_ts FROM bars ORDER BY bar_ts")]


@pytest.fixture
def holed_emulator(tmp_path):
    full = write_candles(tmp_path / "full.csv", n=260, seed=3)
    frame = pd.read_csv(full).drop(index=list(HOLE))
    frame.to_csv(tmp_path / "holed.csv", index=False)
    emu = start_emulator(tmp_path / "holed.csv", start_index=100, bar_seconds=0.1)
    yield emu, load_candles(tmp_path / "holed.csv")
    emu.stop()


@pytest.mark.slow  # restarts stay in the default tier: tests/paper/test_universe.py (a restarted session)
def test_restart_across_a_hole_processes_every_bar_and_keeps_the_exits(holed_emulator, tmp_path):
    emu, candles = holed_emulator
    strategy = recording(load_object("threshold"))
    params = {"indicator": PriceSignal, "stake": 0.5}
    journal = tmp_path / "r.sqlite"
    stop_at, end_at = (
        int(candles.index[132]),
        int(candles.index[165]),
    )  # 132: 3 bars after the hole (holed index)
    first = PaperSession(fast_config(emu.url, journal, mode="sandbox", warmup=WARMUP, until=_iso(stop_at)),
                         strategy, params, env=ENV).run().strategy  # fmt: skip
    second = PaperSession(fast_config(emu.url, journal, mode="sandbox", warmup=WARMUP, until=_iso(end_at)),
                          strategy, params, env=ENV).run().strategy  # fmt: skip
    stamps = _stamps(journal)
    expected = [int(t) for t in candles.index if stamps[0] <= t <= end_at]
    assert stamps == expected, "a bar after the restart was never processed"
    sent = getattr(first, "sent", []) + getattr(second, "sent", [])

    bars = download_history(exchange_client(emu.url), "1m", stamps[0] - 40 * 60_000, end_at + 60_000)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=bars))
    configure_broker(cerebro, cash=10_000.0, commission=0.001, slippage=0.0)
    start = pd.Timestamp(stamps[0], unit="ms").to_pydatetime()
    cerebro.addstrategy(strategy, trade_start=start, **params)
    backtest = cerebro.run()[0]
    expected_orders = getattr(backtest, "sent", [])
    assert any(ts > stop_at and side == "sell" for ts, side, _ in expected_orders), (
        "no exit after the restart"
    )
    assert [(ts, side) for ts, side, _ in sent] == [(ts, side) for ts, side, _ in expected_orders]
    for (_, _, got), (_, _, want) in zip(sent, expected_orders, strict=True):
        assert got == pytest.approx(
            want, rel=2e-2
        )  # the fill at the hole is at the last close, not the next open
    j = Journal(journal)
    try:
        assert not j.intents(("lost", "pending", "open")) and not j.duplicates()
        assert j.last_state()[1] == pytest.approx(emu.engine.free["BTC"], abs=1e-9)
        assert j.events("restore"), "the strategy state was not restored"
    finally:
        j.close()
