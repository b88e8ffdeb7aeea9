"""Paper trading of a universe: several symbols from one emulator through the real ccxt client, ranked by the
shipped ``topk`` strategy, compared with the universe backtest (backtrader's own broker) on the same candles."""

from __future__ import annotations

import pandas as pd
import pytest

from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.exchange import download_history
from kronos_strategies.paper.journal import Journal
from kronos_strategies.paper.report import inspect_journal, journal_returns
from kronos_strategies.paper.session import PaperSession
from kronos_strategies.paper.universe import universe_markets, universe_strategy
from tests.strategies.conftest import TINY

from .helpers import (
    ENV,
    SYMBOLS,
    TF_MS,
    MomentumForecaster,
    exchange_client,
    fast_config,
    start_universe_emulator,
)
from .universe_helpers import (
    backtest_orders,
    filled_orders,
    intent_orders,
    journal_stamps,
    same_orders,
    universe_config,
    universe_csvs,
    universe_session,
)


@pytest.fixture
def universe_emulator(request, tmp_path):
    """Three symbols of one account, SOL with a hole; ``@pytest.mark.parametrize("universe_emulator", [s],
    indirect=True)`` sets the wall seconds per candle (default 0.1)."""
    emu = start_universe_emulator(
        universe_csvs(tmp_path), start_index=100, bar_seconds=getattr(request, "param", 0.1)
    )
    yield emu
    emu.stop()


def test_topk_universe_session_sends_the_backtest_orders(universe_emulator, tmp_path):
    emu = universe_emulator
    cfg = load_config(universe_config(tmp_path, emu.url))
    predictor = MomentumForecaster()
    journal = tmp_path / "j.sqlite"
    live = universe_session(cfg, predictor, journal, max_bars=24).run().strategy
    stamps = journal_stamps(journal)
    assert len(stamps) == 24
    assert all(n == len(SYMBOLS) for n in predictor.calls[:3]) and max(predictor.calls) == len(SYMBOLS)
    want = backtest_orders(emu.url, tmp_path, stamps)
    last = pd.Timestamp(stamps[-1], unit="ms")
    same_orders(
        [o for o in filled_orders(live.fills) if o[0] < last], want
    )  # the backtest cannot fill its last bar's
    same_orders(intent_orders(journal, stamps[-1]), want)
    # journal: one row per bar and symbol, SOL empty in its hole, intents named by symbol with per-symbol ids
    j = Journal(journal)
    try:
        rows = j.symbol_bars()
        assert len(rows) == 24 * len(SYMBOLS)
        sol = {r["bar_ts"]: r["close"] for r in j.symbol_bars("SOL")}
        holes = [ts for ts, close in sol.items() if close is None]
        assert holes, "the session should have run through SOL's hole"
        assert holes == [
            ts for ts in stamps if ts not in set(download_historyjournal_stamps(emu.url, "SOL/USDT", stamps))
        ]
        intents = j.intents()
        assert intents and all(r["symbol"] in SYMBOLS for r in intents)
        assert len({r["cid"] for r in intents}) == len(intents)
        assert all(f"-m{list(SYMBOLS).index(r['symbol'])}-" in r["cid"] for r in intents)
        returns, benchmark = journal_returns(journal)  # the report's benchmark: every symbol at equal weight
        closes = {}
        for name, symbol in SYMBOLS.items():
            frame = download_history(
                _client(emu.url, symbol), "1m", stamps[0] - 20 * TF_MS, stamps[-1] + TF_MS
            )
            closes[name] = frame["close"]
        close = pd.DataFrame(closes)  # union of the symbols' bars; SOL is NaN in its hole
        moved = (close / close.ffill().shift(1) - 1.0).fillna(0.0).mean(axis=1)
        expected = moved[moved.index >= pd.Timestamp(stamps[0], unit="ms")].to_numpy().copy()
        expected[0] = 0.0  # the first processed bar has no return in the journal
        assert benchmark.name == "Equal weight" and benchmark.to_numpy() == pytest.approx(expected, abs=1e-12)
        assert len(returns) == 24
        lines, problems = inspect_journal(journal)
        assert problems == 0 and "SOL/USDT" not in lines[-1]
        held = j.holdings()
        assert {n: round(s, 9) for n, (s, _) in held.items()} == {
            d._name: round(live.broker.getposition(d).size, 9) for d in live.datas
        }
    finally:
        j.close()


def download_historyjournal_stamps(url: str, symbol: str, stamps: list[int]) -> list[int]:
    """Open times of ``symbol``'s candles over the session's bars."""
    client = exchange_client(url)
    client.symbol = symbol
    frame = download_history(client, "1m", stamps[0], stamps[-1] + TF_MS)
    return [int(t.value // 1_000_000) for t in frame.index]


@pytest.mark.slow
@pytest.mark.parametrize("universe_emulator", [0.4], indirect=True)  # exchange round trips: slower candles
def test_topk_universe_through_the_exchange_broker_sends_the_backtest_orders(universe_emulator, tmp_path):
    """CcxtBroker, several symbols of one account: each intent placed once under its symbol, the backtest's
    sides and bar times exactly, sizes within the emulator's lot step (amounts are rounded to it)."""
    emu = universe_emulator
    cfg = load_config(universe_config(tmp_path, emu.url))
    journal = tmp_path / "s.sqlite"
    live = universe_session(cfg, MomentumForecaster(), journal, mode="sandbox", max_bars=24).run().strategy
    stamps = journal_stamps(journal)
    want = backtest_orders(emu.url, tmp_path, stamps)
    same_orders(intent_orders(journal, stamps[-1]), want, rel=1e-4, step=2e-5)
    placed = {m.rules.symbol_id: [o.client_id for o in m.orders] for m in emu.markets.values()}
    j = Journal(journal)
    try:
        intents = {r["cid"]: r for r in j.intents()}
        assert not j.duplicates()
        for symbol_id, cids in placed.items():  # one exchange order per intent, on the intent's own market
            assert len(cids) == len(set(cids))
            assert {SYMBOLS[intents[c]["symbol"]].replace("/", "") for c in cids} <= {symbol_id}
        assert sum(len(c) for c in placed.values()) == len(
            [r for r in intents.values() if r["status"] == "closed"]
        )
        for d in live.datas:  # positions are the account's balances of each base currency
            base = SYMBOLS[d._name].split("/")[0]
            assert live.broker.getposition(d).size == pytest.approx(emu.engine.free.get(base, 0.0), abs=1e-9)
    finally:
        j.close()


def test_a_ranking_strategy_without_a_universe_or_short_on_spot_is_refused(universe_emulator, tmp_path):
    emu = universe_emulator
    cfg = load_config(universe_config(tmp_path, emu.url))
    with pytest.raises(ConfigError, match="add a universe: block"):
        universe_strategy(cfg, None, MomentumForecaster())
    markets = universe_markets(cfg, "binance", "1m")
    short = load_config(
        universe_config(tmp_path, emu.url) | {"strategy": {"name": "long_short", "params": {}}}
    )
    short.universe.shorting = True
    strategy, params = universe_strategy(short, markets, MomentumForecaster())
    config = fast_config(emu.url, tmp_path / "s.sqlite", mode="sandbox", symbol="BTC/USDT")
    with pytest.raises(ConfigError, match="which a ccxt spot account .sandbox mode. cannot"):
        PaperSession(config, strategy, params, env=ENV, markets=markets)
    assert not (tmp_path / "s.sqlite").exists()
    calibrated = load_config(universe_config(tmp_path, emu.url))
    calibrated.indicator.calibration = {"method": "aci"}  # raw live bands would rank unlike the backtest
    with pytest.raises(
        ConfigError, match="indicator.calibration is not supported when paper-trading a universe"
    ):
        universe_strategy(calibrated, markets, MomentumForecaster())
    with pytest.raises(ConfigError, match="is binance 1h but paper: trades binance 1m"):
        universe_markets(load_config(universe_config(tmp_path, emu.url) | {"universe": {"assets": [
            {"source": "ccxt", "symbol": "BTC/USDT", "timeframe": "1h", "since": "2024-01-01"},
            {"source": "ccxt", "symbol": "ETH/USDT", "timeframe": "1m", "since": "2024-01-01"}]}}), "binance", "1m")  # fmt: skip


def test_a_restarted_universe_session_resumes_every_symbol_and_decides_as_without_a_stop(
    universe_emulator, tmp_path
):
    """Stopped after a bar without orders in flight and resumed: every bar once, holdings and targets restored,
    no client order id twice, and the same orders as the backtest over the whole span."""
    emu = universe_emulator
    cfg = load_config(universe_config(tmp_path, emu.url))
    journal = tmp_path / "j.sqlite"
    universe_session(
        cfg, MomentumForecaster(), journal, max_bars=12
    ).run()  # bar 11: no rebalance (every 2 bars)
    j = Journal(journal)
    held, stop = j.holdings(), j.last_bar()
    j.close()
    assert any(size for size, _ in held.values())
    universe_session(cfg, MomentumForecaster(), journal, max_bars=12).run()
    stamps = journal_stamps(journal)
    assert len(stamps) == 24 and len(set(stamps)) == 24
    served = set()
    for symbol in SYMBOLS.values():
        served |= set(download_historyjournal_stamps(emu.url, symbol, stamps))
    assert stamps == sorted(
        ts for ts in served if stamps[0] <= ts <= stamps[-1]
    )  # no bar skipped or repeated
    j = Journal(journal)
    try:
        resumed = [e["message"] for e in j.events("resume")]
        assert len(resumed) == 1 and all(name in resumed[0] for name in SYMBOLS)
        assert j.events("restore") and j.holdings(at=stop) == held
        cids = [r["cid"] for r in j.intents()]
        assert len(cids) == len(set(cids))
    finally:
        j.close()
    same_orders(intent_orders(journal, stamps[-1]), backtest_orders(emu.url, tmp_path, stamps))


@pytest.mark.slow  # loads the tiny model; the session itself is covered in the default tier above
def test_the_cli_paper_trades_a_universe_yaml_against_a_multi_symbol_emulator(
    universe_emulator, tmp_path, capsys
):
    """`kronos-bt paper` with a universe: block (no paper.symbol) and the real tiny model, one line per problem."""
    import yaml

    from kronos_strategies.cli import main

    doc = universe_config(tmp_path, universe_emulator.url)
    doc["paper"] = {"timeframe": "1m", "url": universe_emulator.url, "journal": str(tmp_path / "cli.sqlite"),
                    "warmup": 10, "poll": 0.01, "stale_after_bars": None}  # fmt: skip
    doc["model"] = {"predictor": str(TINY / "predictor"), "tokenizer": str(TINY / "tokenizer")}
    path = tmp_path / "universe.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["paper", str(path), "--max-bars", "4"]) == 0
    out = capsys.readouterr().out
    assert "paper trading BTC/USDT, ETH/USDT, SOL/USDT 1m" in out and "4 bar(s) processed" in out
    j = Journal(tmp_path / "cli.sqlite")
    try:
        assert len(j.symbol_bars()) == 4 * len(SYMBOLS)
    finally:
        j.close()
    doc["universe"]["assets"][0]["timeframe"] = "5m"
    path.write_text(yaml.safe_dump(doc))
    assert main(["paper", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "universe.assets[0] ('BTC') is binance 5m but paper: trades binance 1m" in err
    assert len(err.splitlines()) == 1


def test_the_emulator_command_serves_several_markets(tmp_path, capsys, monkeypatch):
    from kronos_strategies.cli import main

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    csvs = universe_csvs(tmp_path)
    argv = ["emulator", "--port", "0", "--history", "50", "--exit-after", "0.2"]
    for symbol, csv in csvs.items():
        argv += ["--csv", str(csv), "--symbol", symbol]
    assert main(argv) == 0
    assert "emulator serving BTC/USDT, ETH/USDT, SOL/USDT 1m" in capsys.readouterr().out
    assert main([*argv, "--csv", str(csvs["BTC/USDT"])]) == 2
    assert "give one --symbol per --csv" in capsys.readouterr().err


def _client(url: str, symbol: str):  # noqa: ANN202 - an ExchangeClient
    client = exchange_client(url)
    client.symbol = symbol
    return client


@pytest.mark.slow  # a subprocess killed mid-run; the restart itself is covered in the default tier above
@pytest.mark.parametrize("universe_emulator", [1e6], indirect=True)  # paused until the child is up
def test_a_killed_universe_session_restarts_without_duplicate_orders(universe_emulator, tmp_path):
    import datetime as dt
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time
    from pathlib import Path

    emu = universe_emulator
    first_ts = int(emu.engine.ts[100])
    until = dt.datetime.fromtimestamp((first_ts + 60 * TF_MS) / 1000, tz=dt.timezone.utc).isoformat()
    journal = tmp_path / "killed.sqlite"
    cmd = [sys.executable, str(Path(__file__).with_name("child_universe.py")), emu.url, str(journal), until]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}

    def processed() -> int:
        if not journal.exists():
            return 0
        try:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
                return int(db.execute("SELECT COUNT(*) FROM bars").fetchone()[0])
        except sqlite3.OperationalError:
            return 0

    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not journal.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # warm-up history loaded
    emu.engine.clock.set_speed(TF_MS / 1000 / 0.4)  # one candle per 0.4 s for every market (one clock)
    while processed() < 12 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]  # still mid-run
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = processed()
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-3000:]
    stamps = journal_stamps(journal)
    assert len(stamps) > killed_at >= 12 and len(set(stamps)) == len(stamps)
    served = set()
    for symbol in SYMBOLS.values():
        served |= {int(t.value // 1_000_000) for t in download_history(_client(emu.url, symbol), "1m", stamps[0],
                                                                        stamps[-1] + TF_MS).index}  # fmt: skip
    assert stamps == sorted(served)  # every bar of the union once, across the kill
    j = Journal(journal)
    try:
        assert not j.duplicates()
        intents = {r["cid"]: r for r in j.intents()}
        assert intents and not [c for c, r in intents.items() if r["status"] in ("pending", "open")]
        for market in emu.markets.values():  # each intent reached its own market at most once
            cids = [o.client_id for o in market.orders]
            assert len(cids) == len(set(cids))
            assert all(SYMBOLS[intents[c]["symbol"]].replace("/", "") == market.rules.symbol_id for c in cids)
        held = j.holdings()
        for name, symbol in SYMBOLS.items():  # journaled positions are the account's balances
            assert held[name][0] == pytest.approx(emu.engine.free.get(symbol.split("/")[0], 0.0), abs=1e-9)
    finally:
        j.close()
