"""Broker parity: every shipped strategy sends the same orders through BackBroker, PaperBroker and CcxtBroker
(ranking strategies over a universe of three symbols, compared with the universe backtest).

Same candles, same signal (a deterministic price-based stand-in for the model, so only the brokers differ):
the order sides and sizes bar by bar and the final position must match backtrader's own broker.
Exchange rounding: amounts go to the emulator's 0.00001 lot step, so sizes agree to rel 1e-4 / abs 2e-5.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import backtrader as bt
import pytest

from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.exchange import download_history
from kronos_strategies.paper.session import PaperSession
from kronos_strategies.strategy import (
    STRATEGIES,
    FractionalCommission,
    KronosStrategy,
    configure_broker,
    load_object,
)

from .helpers import (
    ENV,
    TF_MS,
    MomentumForecaster,
    PriceSignal,
    exchange_client,
    fast_config,
    recording,
    start_universe_emulator,
)
from .universe_helpers import (
    backtest_orders,
    intent_orders,
    journal_stamps,
    same_orders,
    universe_config,
    universe_csvs,
    universe_session,
)

WARMUP = 20
# Per strategy: params that make it trade often on 1-minute random-walk candles (exposure well below 1);
# a new single-feed strategy runs with its defaults and must trade at least 3 times to be compared.
PARAMS = {
    "threshold": {"stake": 0.5},
    "vol_target": {"target_vol": 1.5, "periods_per_year": 525_600.0},
}
FAST = {"threshold"}  # one fast representative; the rest run in the slow tier


def _cases() -> list:
    out = []
    for name in sorted(STRATEGIES):
        marks = [] if name in FAST else [pytest.mark.slow]
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _stamps(journal: Path) -> list[int]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT bar_ts FROM bars ORDER BY bar_ts")]


def _backtest(
    url: str, strategy: type[bt.Strategy], params: dict, stamps: list[int], cash: float
) -> bt.Strategy:
    """backtrader's own broker on the session's warm-up plus processed bars, trading only the processed ones."""
    bars = download_history(exchange_client(url), "1m", stamps[0] - WARMUP * TF_MS, stamps[-1] + TF_MS)
    assert len(bars) == len(stamps) + WARMUP
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=bars))
    configure_broker(cerebro, cash=cash, commission=0.001, slippage=0.0)
    start = bars.index[WARMUP].to_pydatetime()
    cerebro.addstrategy(strategy, trade_start=start, **params)
    return cerebro.run()[0]


def _same_orders(live: list, backtest: list) -> None:
    assert [(ts, side) for ts, side, _ in live] == [(ts, side) for ts, side, _ in backtest]
    for (_, _, got), (_, _, want) in zip(live, backtest, strict=True):
        assert got == pytest.approx(want, rel=1e-4, abs=2e-5)


def _universe_parity(name: str, tmp_path: Path) -> None:
    """A ranking strategy over three symbols of one emulator account (one with a hole): the universe backtest's
    orders through PaperBroker, and through CcxtBroker where spot can trade them (long_short sells short:
    refused on spot with the reason)."""
    for mode in ("paper", "sandbox"):
        folder = tmp_path / mode
        folder.mkdir()
        emu = start_universe_emulator(universe_csvs(folder), start_index=100, bar_seconds=0.4)
        try:
            cfg = load_config(universe_config(folder, emu.url, name))
            journal = folder / "j.sqlite"
            if mode == "sandbox" and name == "long_short":
                with pytest.raises(ConfigError, match="cannot: run long_short in mode: paper"):
                    universe_session(cfg, MomentumForecaster(), journal, mode=mode)
                continue
            universe_session(cfg, MomentumForecaster(), journal, mode=mode, max_bars=24).run()
            stamps = journal_stamps(journal)
            want = backtest_orders(emu.url, folder, stamps, name)
            exact = mode == "paper"  # the exchange rounds amounts to its 0.00001 lot step
            same_orders(
                intent_orders(journal, stamps[-1]),
                want,
                rel=1e-9 if exact else 1e-4,
                step=0 if exact else 2e-5,
            )
        finally:
            emu.stop()


@pytest.mark.parametrize("name", _cases())
def test_shipped_strategy_sends_the_backtest_orders_through_every_broker(name, emulator, tmp_path):
    if not issubclass(load_object(name), KronosStrategy):  # a ranking strategy trades a universe of symbols
        _universe_parity(name, tmp_path)
        return
    strategy = recording(load_object(name))
    params = {"indicator": PriceSignal, **PARAMS.get(name, {})}
    for mode in ("paper", "sandbox"):
        emu = emulator(start_index=100, bar_seconds=0.2)
        journal = tmp_path / f"{mode}.sqlite"
        config = fast_config(emu.url, journal, mode=mode, warmup=WARMUP, max_bars=30, commission=0.001)
        live = PaperSession(config, strategy, params, env=ENV).run().strategy
        stamps = _stamps(journal)
        backtest = _backtest(emu.url, strategy, params, stamps, config.cash if mode == "paper" else 10_000.0)
        sent, expected = getattr(live, "sent", []), getattr(backtest, "sent", [])
        assert len(expected) >= 3, f"{name} traded too little to compare ({expected})"
        assert {side for _, side, _ in expected} == {"buy", "sell"}
        _same_orders(sent, expected)
        final = live.broker.getposition(live.data).size
        assert final == pytest.approx(backtest.position.size, rel=1e-4, abs=2e-5)
        if mode == "sandbox":  # every order reached the exchange once, and was filled
            assert [o.side.lower() for o in emu.engine.orders] == [side for _, side, _ in expected]
            assert all(o.status == "FILLED" for o in emu.engine.orders)
            assert emu.engine.free["BTC"] == pytest.approx(final, abs=1e-9)


def test_getvalue_of_datas_is_the_position_value_like_backbroker(emulator, tmp_path):
    """order_target_* asks ``getvalue(datas=[data])``: the position's value only, never cash."""
    emu = emulator(start_index=100, bar_seconds=0.2)

    class Probe(bt.Strategy):
        def __init__(self) -> None:
            self.seen: list[tuple[float, float, float]] = []

        def next(self) -> None:
            if len(self.seen) == 2:
                self.order_target_percent(target=0.5)
            self.seen.append(
                (self.broker.getvalue(datas=[self.data]), self.broker.getvalue(), self.position.size)
            )

    config = fast_config(emu.url, tmp_path / "v.sqlite", warmup=5, max_bars=5)
    probe = PaperSession(config, Probe, env=ENV).run().strategy
    assert probe.seen[0][0] == 0.0 and probe.seen[0][1] == pytest.approx(
        10_000.0
    )  # all cash: no position value
    buys = [o for o in emu.engine.orders if o.side == "BUY"]
    assert len(emu.engine.orders) == 1 and len(buys) == 1  # the old code sent a SELL from an all-cash account
    value, total, size = probe.seen[-1]
    assert size > 0 and value == pytest.approx(size * probe.data.close[0])
    assert value / total == pytest.approx(0.5, abs=0.02)
    assert isinstance(probe.broker.getcommissioninfo(probe.data), FractionalCommission)
