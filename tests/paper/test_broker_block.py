"""One ``broker:`` block, one meaning: the backtest's broker and the paper session's broker start with the same
cash and charge the same commission and slippage, read from the same YAML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kronos_strategies.config import BrokerConfig, load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.paper.config import PaperConfig, paper_config
from kronos_strategies.paper.session import PaperSession
from kronos_strategies.runner import run_backtest

from .helpers import ENV, SmaCross

BROKER = {"cash": 12_345.0, "commission": 0.0025, "slippage": 0.0015}  # none of them a default


def _yaml(tmp_path: Path, csv: Path, url: str, tiny: Path) -> Path:
    doc = {
        "data": {"path": str(csv)},
        "model": {"predictor": str(tiny / "predictor"), "tokenizer": str(tiny / "tokenizer")},
        "indicator": {"lookback": 16, "pred_len": 2, "horizon": 2, "sample_count": 2, "every": 5, "cache_dir": None},
        "strategy": {"name": "threshold", "params": {"enter": 0.0, "exit": 0.0}},
        "broker": BROKER,
        "output": {"tearsheet": False, "chart": False},
        "engine": {"progress": False},
        "paper": {"symbol": "BTC/USDT", "timeframe": "1m", "url": url, "journal": str(tmp_path / "b.sqlite"),
                  "mode": "paper", "warmup": 10, "poll": 0.01, "timeout_ms": 300, "backoff": 0.01,
                  "max_backoff": 0.05, "max_bars": 3, "stale_after_bars": None},
    }  # fmt: skip
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _broker_terms(strategy) -> tuple[float, float, float, bool]:  # noqa: ANN001
    """Starting cash, commission rate, slippage fraction and whether opens slip, as the broker holds them."""
    broker = strategy.broker
    info = broker.getcommissioninfo(strategy.data)
    return broker.startingcash, info.p.commission, broker.p.slip_perc, broker.p.slip_open


def test_one_broker_block_gives_the_backtest_and_the_paper_broker_the_same_cash_and_costs(
    emulator, candles_csv, tmp_path, tiny_dir, tiny_predictor
):
    path = _yaml(
        tmp_path, candles_csv, "http://127.0.0.1:9", tiny_dir
    )  # the emulator starts after the backtest
    result = run_backtest(path, predictor=tiny_predictor, write_reports=False)
    # the backtest: its equity starts at broker.cash, every fill pays broker.commission of its value and
    # fills at the bar's open moved by broker.slippage against the order (kept inside the bar's range)
    assert result.equity.iloc[0] == pytest.approx(BROKER["cash"])
    fills = result.fills
    assert len(fills) >= 2, "the backtest made no trades to check the costs on"
    bars = pd.read_csv(candles_csv)
    bars.index = pd.to_datetime(bars["timestamp"])
    for _, fill in fills.iterrows():
        bar = bars.loc[pd.Timestamp(fill["executed"])]
        side = 1.0 if fill["size"] > 0 else -1.0
        slipped = min(max(bar["open"] * (1.0 + side * BROKER["slippage"]), bar["low"]), bar["high"])
        assert fill["price"] == pytest.approx(slipped, rel=1e-9)
        assert abs(fill["commission"]) == pytest.approx(
            abs(fill["size"]) * fill["price"] * BROKER["commission"]
        )
    # the paper session built from the same file: its backtrader broker holds the same terms
    # (its set-up does not depend on the strategy: a model-free one keeps the test fast)
    params = {"fast": 3, "slow": 8, "stake": 1.0}
    config = paper_config(load_config(path), url=emulator(bar_seconds=0.02).url)
    paper = PaperSession(config, SmaCross, params, env=ENV).run().strategy
    assert _broker_terms(paper) == pytest.approx(
        (BROKER["cash"], BROKER["commission"], BROKER["slippage"], True)
    )


def test_paper_config_has_every_broker_key_with_the_backtest_defaults_and_rules():
    fields = {f.name: f.default for f in dataclasses.fields(PaperConfig)}
    for f in dataclasses.fields(BrokerConfig):
        assert fields[f.name] == f.default, f"broker.{f.name} has another default in paper trading"
    assert PaperConfig(symbol="BTC/USDT", commission=0.2).broker.commission == 0.2  # [0, 1) as in a backtest
    with pytest.raises(ConfigError, match=r"'broker.commission' must be in \[0, 1\), got 1.5"):
        PaperConfig(symbol="BTC/USDT", commission=1.5)
    with pytest.raises(ConfigError, match=r"'broker.cash' must be > 0, got 0"):
        PaperConfig(symbol="BTC/USDT", cash=0.0)
    with pytest.raises(ConfigError, match=r"'broker.slippage' must be of type float"):
        PaperConfig(symbol="BTC/USDT", slippage="low")  # type: ignore[arg-type]


def test_sandbox_and_live_say_the_broker_block_is_not_theirs():
    paper = PaperConfig(symbol="BTC/USDT", cash=5_000.0)
    assert "cash 5,000.00" in paper.broker_line() and "broker: block" in paper.broker_line()
    sandbox = dataclasses.replace(paper, mode="sandbox").broker_line()
    assert "exchange account's balance" in sandbox and "paper mode only" in sandbox
