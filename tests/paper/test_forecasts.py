"""A paper session journals the latest Kronos forecast per processed bar; the dashboard serves it as the fan."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import backtrader as bt
import pytest

from kronos_strategies.dashboard import DashboardSettings, create_app
from kronos_strategies.dashboard.sessions import read_session
from kronos_strategies.exchange import download_history
from kronos_strategies.indicator import KronosSignal
from kronos_strategies.paper.journal import ForecastFan, Journal
from kronos_strategies.paper.session import PaperSession
from kronos_strategies.strategy import load_object

from .helpers import TF_MS, SmaCross, exchange_client, fast_config

LEVELS = ["0.1", "0.25", "0.5", "0.75", "0.9"]
WARMUP = 20


def _signal_params(predictor) -> dict:
    return {"predictor": predictor, "lookback": 16, "pred_len": 3, "horizon": 3, "sample_count": 4,
            "cache": None, "seed": 0}  # fmt: skip


def _rows(journal: Path, table: str, order: str) -> list[dict]:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY {order}")]


@pytest.fixture
def kronos_session(emulator, tiny_predictor, tmp_path) -> tuple[Path, str]:
    """Six bars of the shipped threshold strategy on the tiny model, in paper mode against the emulator."""
    emu = emulator(start_index=100, bar_seconds=0.05)
    journal = tmp_path / "fc.sqlite"
    config = fast_config(emu.url, journal, mode="paper", warmup=WARMUP, max_bars=6)
    params = {"indicator_params": _signal_params(tiny_predictor), "stake": 0.5}
    result = PaperSession(config, load_object("threshold"), params).run()
    assert result.bars == 6
    return journal, emu.url


def test_each_processed_bar_journals_the_forecast_made_from_it(kronos_session, tiny_predictor):
    journal, url = kronos_session
    bars = [r["bar_ts"] for r in _rows(journal, "bars", "bar_ts")]
    fans = _rows(journal, "forecasts", "bar_ts")
    assert len(bars) == 6
    assert [f["bar_ts"] for f in fans] == bars  # one per bar, stamped with the last bar the model saw
    assert {f["symbol"] for f in fans} == {"BTC/USDT"}
    for fan in fans:
        quantiles, mean = json.loads(fan["quantiles"]), json.loads(fan["mean"])
        assert sorted(quantiles, key=float) == LEVELS and len(mean) == 3
        for step in range(3):
            column = [quantiles[q][step] for q in LEVELS]
            assert column == sorted(column)  # quantiles ordered at every step
    # No lookahead: a backtest that only ever had the bars up to the last processed one makes the same forecast.
    last = bars[-1]
    history = download_history(exchange_client(url), "1m", last - 40 * TF_MS, last + TF_MS)
    assert history.index[-1].value // 1_000_000 == last
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=history))
    cerebro.addindicator(KronosSignal, **_signal_params(tiny_predictor))
    indicator = cerebro.run()[0].getindicators()[0]
    forecast = indicator.latest_forecast
    assert forecast.history_end.value // 1_000_000 == last
    want = forecast.quantile([float(q) for q in LEVELS], "close")
    got = json.loads(fans[-1]["quantiles"])
    for q, row in zip(LEVELS, want, strict=True):
        assert got[q] == pytest.approx([float(x) for x in row], rel=1e-5)
    assert json.loads(fans[-1]["mean"]) == pytest.approx(
        [float(x) for x in forecast.mean[:, forecast.columns.index("close")]], rel=1e-5
    )


def test_dashboard_serves_the_latest_fan_of_a_real_session(kronos_session):
    journal, _ = kronos_session
    last = _rows(journal, "forecasts", "bar_ts")[-1]
    snapshot = read_session(journal)
    assert snapshot["forecasts"] == [last]
    served = create_app(DashboardSettings(journals=[journal])).test_client().get("/api/session/0").get_json()
    assert served["forecasts"] == [last]
    assert served["forecasts"][0]["bar_ts"] == served["last_bar"]["bar_ts"]
    assert sorted(json.loads(served["forecasts"][0]["quantiles"]), key=float) == LEVELS


def test_a_strategy_without_forecasts_journals_none(emulator, tmp_path):
    emu = emulator(start_index=100, bar_seconds=0.02)
    journal = tmp_path / "sma.sqlite"
    config = fast_config(emu.url, journal, mode="paper", warmup=8, max_bars=3)
    assert PaperSession(config, SmaCross, {"fast": 3, "slow": 8, "stake": 1.0}).run().bars == 3
    assert _rows(journal, "forecasts", "bar_ts") == []
    assert read_session(journal)["forecasts"] == []


def test_an_older_journal_gains_the_forecasts_table(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE bars (bar_ts INTEGER PRIMARY KEY, open REAL, high REAL, low REAL, close REAL,"
                   " volume REAL, processed REAL)")  # fmt: skip
        db.execute("INSERT INTO bars VALUES (60000, 1, 2, 0.5, 1.5, 10, 0)")
    journal = Journal(path)
    journal.record_bar(120_000, (1.5, 2, 1, 1.8, 5), cash=10.0, value=11.0, size=0.0, price=0.0,
                       forecast=ForecastFan(120_000, "BTC/USDT", {0.1: [1.0], 0.9: [2.0]}, [1.5]))  # fmt: skip
    journal.close()
    fans = _rows(path, "forecasts", "bar_ts")
    assert fans == [{"bar_ts": 120_000, "symbol": "BTC/USDT", "quantiles": '{"0.1": [1.0], "0.9": [2.0]}',
                     "mean": "[1.5]"}]  # fmt: skip
    assert [r["bar_ts"] for r in _rows(path, "bars", "bar_ts")] == [60_000, 120_000]
