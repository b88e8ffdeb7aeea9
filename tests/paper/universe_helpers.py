"""Universe paper-trading test helpers: three symbols of one emulator account, sessions, and the universe
backtest on the same candles (downloaded through ccxt) to compare orders with."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import backtrader as bt
import pandas as pd
import pytest

from kronos_strategies.config import load_config
from kronos_strategies.exchange import download_history
from kronos_strategies.paper.session import PaperSession
from kronos_strategies.paper.universe import universe_markets, universe_strategy
from kronos_strategies.universe.runner import run_universe_backtest

from .helpers import ENV, SYMBOLS, TF_MS, MomentumForecaster, exchange_client, fast_config, write_candles

STRATEGY_PARAMS = {"topk": {"k": 1, "cash_buffer": 0.05}, "long_short": {"quantile": 0.34, "gross": 0.9}}


def universe_csvs(tmp_path: Path) -> dict[str, Path]:
    """Seeded 1-minute candles per symbol; SOL/USDT has a hole (candles never published)."""
    csvs = {}
    for i, symbol in enumerate(SYMBOLS.values()):
        path = write_candles(tmp_path / f"{i}.csv", n=260, seed=10 + i)
        if symbol == "SOL/USDT":
            pd.read_csv(path).drop(index=list(HOLE)).to_csv(path, index=False)
        csvs[symbol] = path
    return csvs


LOOKBACK = 8
WARMUP = LOOKBACK + 2
HOLE = range(112, 115)  # SOL/USDT candles the exchange never published


def universe_config(tmp_path: Path, url: str, strategy: str = "topk", **params: object) -> dict:
    """A universe YAML (as a mapping) for the emulator's three symbols (``long_short`` gets shorting: true)."""
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
            ],
            "shorting": strategy == "long_short",
        },
        "indicator": {
            "lookback": LOOKBACK,
            "pred_len": 4,
            "horizon": 2,
            "sample_count": 2,
            "seed": 0,
            "cache_dir": None,
        },
        "strategy": {
            "name": strategy,
            "params": {**STRATEGY_PARAMS.get(strategy, {}), "rebalance": 2, **params},
        },
        "broker": {"cash": 10_000.0, "commission": 0.001, "slippage": 0.0},
        "paper": {"symbol": "BTC/USDT", "timeframe": "1m", "url": url, "journal": str(tmp_path / "j.sqlite")},
        "output": {"dir": str(tmp_path / "run"), "tearsheet": False, "chart": False},
        "engine": {"mode": "event", "progress": False},
    }


def universe_session(cfg, predictor, journal: Path, mode: str = "paper", **overrides) -> PaperSession:
    markets = universe_markets(cfg, "binance", "1m")
    strategy, params = universe_strategy(cfg, markets, predictor)
    config = fast_config(cfg.paper.url, journal, mode=mode, warmup=WARMUP, cash=10_000.0,
                         symbol="BTC/USDT", **overrides)  # fmt: skip
    return PaperSession(config, strategy, params, env=ENV, markets=markets)


def journal_stamps(journal: Path) -> list[int]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT bar_ts FROM bars ORDER BY bar_ts")]


def filled_orders(fills: list[dict]) -> list[tuple]:
    """(bar the order was created on, asset, buy?, size) per filled order."""

    def when(x: object) -> pd.Timestamp:
        return pd.Timestamp(bt.num2date(x) if isinstance(x, float) else x).round("s")

    return [(when(f["created"]), f["asset"], f["size"] > 0, abs(f["size"])) for f in fills]


def backtest_orders(url: str, tmp_path: Path, stamps: list[int], strategy: str = "topk") -> list[tuple]:
    """The universe backtest (backtrader's broker) on the same candles, downloaded through ccxt, trading from
    the session's first bar to its last: (bar created, asset, buy?, size) per filled order."""
    frames = {}
    for name, symbol in SYMBOLS.items():
        client = exchange_client(url)
        client.symbol = symbol
        frames[name] = download_history(client, "1m", stamps[0] - 3 * WARMUP * TF_MS, stamps[-1] + TF_MS)
    first, last = (pd.Timestamp(s, unit="ms") for s in (stamps[0], stamps[-1]))
    cfg = load_config(
        universe_config(tmp_path, url, strategy) | {"dates": {"start": str(first), "end": str(last)}}
    )
    result = run_universe_backtest(cfg, predictor=MomentumForecaster(), frames=frames, write_reports=False)
    return filled_orders(result.fills.to_dict("records"))


def intent_orders(journal: Path, before: int) -> list[tuple]:
    """The journal's intents on bars before ``before`` as (bar, asset, buy?, size)."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT bar_ts, symbol, side, amount FROM intents WHERE bar_ts < ? ORDER BY created, cid",
            (before,),
        ).fetchall()
    return [(pd.Timestamp(ts, unit="ms"), sym, side == "buy", amount) for ts, sym, side, amount in rows]


def same_orders(got: list[tuple], want: list[tuple], *, rel: float = 1e-9, step: float = 0.0) -> None:
    """Same orders: sides, assets and bar times exactly; sizes within ``rel`` (plus the lot ``step``)."""
    assert len(want) >= 4 and {a for _, a, _, _ in want} >= {"BTC", "ETH"}, want
    assert [o[:3] for o in got] == [o[:3] for o in want]
    for g, w in zip(got, want, strict=True):
        assert g[3] == pytest.approx(w[3], rel=rel, abs=step)
