"""Paper trading of a universe: several symbols from one emulator through the real ccxt client, ranked by the
shipped ``topk`` strategy, compared with the universe backtest (backtrader's own broker) on the same candles."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import backtrader as bt
import pandas as pd
import pytest

from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.exchange import download_history
from kronos_strategies.paper.journal import Journal
from kronos_strategies.paper.session import PaperSession
from kronos_strategies.paper.universe import universe_markets, universe_strategy
from kronos_strategies.universe.runner import run_universe_backtest

from .helpers import (
    ENV,
    SYMBOLS,
    TF_MS,
    MomentumForecaster,
    exchange_client,
    fast_config,
    start_universe_emulator,
    write_candles,
)

LOOKBACK = 8
WARMUP = LOOKBACK + 2
HOLE = range(112, 115)  # SOL/USDT candles the exchange never published


def _config(tmp_path: Path, url: str, **params: object) -> dict:
    """A universe YAML (as a mapping) for the emulator's three symbols."""
    return {
        "name": "paper_universe",
        "universe": {
            "assets": [
                {
                    "source": "ccxt",
                    "symbol": s,
                    "timeframe": "1m",
                    "url": url,
                    "name": n,
                    "since": "2024-01-01",
                    "cache_dir": None,
                }
                for n, s in SYMBOLS.items()
            ]
        },  # fmt: skip
        "indicator": {
            "lookback": LOOKBACK,
            "pred_len": 4,
            "horizon": 2,
            "sample_count": 2,
            "seed": 0,
            "cache_dir": None,
        },
        "strategy": {"name": "topk", "params": {"k": 1, "rebalance": 2, "cash_buffer": 0.05, **params}},
        "broker": {"cash": 10_000.0, "commission": 0.001, "slippage": 0.0},
        "paper": {"symbol": "BTC/USDT", "timeframe": "1m", "url": url, "journal": str(tmp_path / "j.sqlite")},
        "output": {"dir": str(tmp_path / "run"), "tearsheet": False, "chart": False},
        "engine": {"mode": "event", "progress": False},
    }


@pytest.fixture
def universe_emulator(tmp_path):
    csvs = {}
    for i, symbol in enumerate(SYMBOLS.values()):
        path = write_candles(tmp_path / f"{i}.csv", n=260, seed=10 + i)
        if symbol == "SOL/USDT":
            pd.read_csv(path).drop(index=list(HOLE)).to_csv(path, index=False)
        csvs[symbol] = path
    emu = start_universe_emulator(csvs, start_index=100, bar_seconds=0.1)
    yield emu
    emu.stop()


def _session(cfg, predictor, journal: Path, **overrides) -> PaperSession:
    markets = universe_markets(cfg, "binance", "1m")
    strategy, params = universe_strategy(cfg, markets, predictor)
    config = fast_config(cfg.sections["paper"].url, journal, mode="paper", warmup=WARMUP, cash=10_000.0,
                         symbol="BTC/USDT", **overrides)  # fmt: skip
    return PaperSession(config, strategy, params, env=ENV, markets=markets)


def _stamps(journal: Path) -> list[int]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT bar_ts FROM bars ORDER BY bar_ts")]


def _orders(fills: list[dict]) -> list[tuple]:
    """(bar the order was created on, asset, buy?, size) per filled order."""

    def when(x: object) -> pd.Timestamp:
        return pd.Timestamp(bt.num2date(x) if isinstance(x, float) else x).round("s")

    return [(when(f["created"]), f["asset"], f["size"] > 0, abs(f["size"])) for f in fills]


def test_topk_universe_session_sends_the_backtest_orders(universe_emulator, tmp_path):
    emu = universe_emulator
    cfg = load_config(_config(tmp_path, emu.url))
    predictor = MomentumForecaster()
    journal = tmp_path / "j.sqlite"
    live = _session(cfg, predictor, journal, max_bars=24).run().strategy
    stamps = _stamps(journal)
    assert len(stamps) == 24
    assert all(n == len(SYMBOLS) for n in predictor.calls[:3]) and max(predictor.calls) == len(SYMBOLS)
    # the backtest: the same candles downloaded through ccxt, trading from the session's first bar
    frames = {}
    for name, symbol in SYMBOLS.items():
        client = exchange_client(emu.url)
        client.symbol = symbol
        frames[name] = download_history(client, "1m", stamps[0] - 3 * WARMUP * TF_MS, stamps[-1] + TF_MS)
    first, last = (pd.Timestamp(s, unit="ms") for s in (stamps[0], stamps[-1]))
    bt_cfg = load_config(_config(tmp_path, emu.url) | {"dates": {"start": str(first), "end": str(last)}})
    result = run_universe_backtest(bt_cfg, predictor=MomentumForecaster(), frames=frames, write_reports=False)
    want = _orders(result.fills.to_dict("records"))
    got = [o for o in _orders(live.fills) if o[0] < last]  # the backtest cannot fill orders of its last bar
    assert len(want) >= 4 and {a for _, a, _, _ in want} >= {"BTC", "ETH"}, want
    assert [o[:3] for o in got] == [o[:3] for o in want]
    for g, w in zip(got, want, strict=True):
        assert g[3] == pytest.approx(w[3], rel=1e-9)
    # journal: one row per bar and symbol, SOL empty in its hole, intents named by symbol with per-symbol ids
    j = Journal(journal)
    try:
        rows = j.symbol_bars()
        assert len(rows) == 24 * len(SYMBOLS)
        sol = {r["bar_ts"]: r["close"] for r in j.symbol_bars("SOL")}
        holes = [ts for ts, close in sol.items() if close is None]
        assert holes == [
            ts for ts in stamps if ts not in set(download_history_stamps(emu.url, "SOL/USDT", stamps))
        ]
        intents = j.intents()
        assert intents and all(r["symbol"] in SYMBOLS for r in intents)
        assert len({r["cid"] for r in intents}) == len(intents)
        assert all(f"-m{list(SYMBOLS).index(r['symbol'])}-" in r["cid"] for r in intents)
        held = j.holdings()
        assert {n: round(s, 9) for n, (s, _) in held.items()} == {
            d._name: round(live.broker.getposition(d).size, 9) for d in live.datas
        }
    finally:
        j.close()


def download_history_stamps(url: str, symbol: str, stamps: list[int]) -> list[int]:
    """Open times of ``symbol``'s candles over the session's bars."""
    client = exchange_client(url)
    client.symbol = symbol
    frame = download_history(client, "1m", stamps[0], stamps[-1] + TF_MS)
    return [int(t.value // 1_000_000) for t in frame.index]


def test_a_ranking_strategy_without_a_universe_or_on_an_exchange_is_refused(universe_emulator, tmp_path):
    emu = universe_emulator
    cfg = load_config(_config(tmp_path, emu.url))
    with pytest.raises(ConfigError, match="add a universe: block"):
        universe_strategy(cfg, None, MomentumForecaster())
    markets = universe_markets(cfg, "binance", "1m")
    strategy, params = universe_strategy(cfg, markets, MomentumForecaster())
    config = fast_config(emu.url, tmp_path / "s.sqlite", mode="sandbox", symbol="BTC/USDT")
    with pytest.raises(ConfigError, match="use mode: paper"):
        PaperSession(config, strategy, params, env=ENV, markets=markets)
    with pytest.raises(ConfigError, match="is binance 1h but paper: trades binance 1m"):
        universe_markets(load_config(_config(tmp_path, emu.url) | {"universe": {"assets": [
            {"source": "ccxt", "symbol": "BTC/USDT", "timeframe": "1h", "since": "2024-01-01"},
            {"source": "ccxt", "symbol": "ETH/USDT", "timeframe": "1m", "since": "2024-01-01"}]}}), "binance", "1m")  # fmt: skip
