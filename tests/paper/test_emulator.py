"""The emulator, driven by the real ccxt binance client: market data, signed requests, matching, faults."""

from __future__ import annotations

import time

import ccxt
import numpy as np
import pytest

from kronos_strategies.emulator import FaultPlan, load_candles
from kronos_strategies.exchange.client import make_exchange

from .helpers import API_KEY, SECRET, TF_MS


def _ccxt(url: str, secret: str = SECRET) -> ccxt.Exchange:
    exchange = make_exchange("binance", url=url, api_key=API_KEY, secret=secret, timeout_ms=300)
    exchange.load_markets()
    return exchange


def test_klines_match_the_csv_and_hide_the_forming_candle(emulator, candles_csv):
    emu = emulator(start_index=100, bar_seconds=60.0)  # the clock barely moves during the test
    rows = _ccxt(emu.url).fetch_ohlcv("BTC/USDT", "1m", limit=6)
    csv = load_candles(candles_csv)
    assert [r[0] for r in rows] == list(csv.index[95:101])
    for row, (_, ref) in zip(rows[:-1], csv.iloc[95:100].iterrows()):
        np.testing.assert_allclose(
            row[1:6], ref[["open", "high", "low", "close", "volume"]].to_numpy(), rtol=1e-9
        )
    forming = rows[-1]
    assert forming[1] == pytest.approx(csv["open"].iloc[100], rel=1e-9)
    assert forming[1] == forming[2] == forming[3] == forming[4] and forming[5] == 0.0


def test_wrong_secret_is_refused_as_binance_does(emulator):
    emu = emulator()
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        _ccxt(emu.url, secret="not-the-secret").fetch_balance()
    good = _ccxt(emu.url)
    good.apiKey = "someone-else"
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        good.fetch_balance()


def test_market_order_fills_at_the_forming_open_with_the_fee_in_quote(emulator, candles_csv):
    emu = emulator(start_index=100, bar_seconds=60.0)
    exchange = _ccxt(emu.url)
    order = exchange.create_order("BTC/USDT", "market", "buy", 0.5, params={"newClientOrderId": "t-1"})
    open_px = load_candles(candles_csv)["open"].iloc[100]
    assert order["status"] == "closed" and order["filled"] == 0.5 and order["clientOrderId"] == "t-1"
    assert order["average"] == pytest.approx(open_px, rel=1e-9)
    balance = exchange.fetch_balance()
    assert balance["BTC"]["total"] == pytest.approx(0.5)
    assert balance["USDT"]["total"] == pytest.approx(10_000 - 0.5 * open_px * 1.001, rel=1e-9)


def test_resting_limit_order_fills_partially_then_cancel_releases_funds(emulator, candles_csv):
    csv = load_candles(candles_csv)
    price = round(float(csv["open"].iloc[100:106].min()) * 0.998, 2)  # below the market while we place it
    assert (csv["low"].iloc[106:160] < price).any()  # ... and crossed later in the seeded data
    emu = emulator(start_index=100, bar_seconds=0.02, liquidity=0.01)
    exchange = _ccxt(emu.url)
    order = exchange.create_order(
        "BTC/USDT", "limit", "buy", 2.0, price, params={"newClientOrderId": "t-lim"}
    )
    assert order["status"] == "open" and order["filled"] == 0
    deadline = time.monotonic() + 5
    while exchange.fetch_order(order["id"], "BTC/USDT")["filled"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    canceled = exchange.cancel_order(order["id"], "BTC/USDT")
    assert canceled["status"] == "canceled" and 0 < canceled["filled"] < 2.0
    trades = exchange.fetch_my_trades("BTC/USDT")
    assert sum(t["amount"] for t in trades) == pytest.approx(canceled["filled"])
    assert all(t["price"] == pytest.approx(price) and t["takerOrMaker"] == "maker" for t in trades)
    balance = exchange.fetch_balance()
    assert balance["USDT"]["used"] == pytest.approx(0.0, abs=1e-9)
    spent = sum(t["cost"] + t["fee"]["cost"] for t in trades)
    assert balance["USDT"]["total"] == pytest.approx(10_000 - spent, rel=1e-12)


def test_client_ids_are_unique_only_among_open_orders(emulator):
    emu = emulator(bar_seconds=60.0)
    exchange = _ccxt(emu.url)
    exchange.create_order("BTC/USDT", "limit", "buy", 0.1, 60.0, params={"newClientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order"):
        exchange.create_order("BTC/USDT", "limit", "buy", 0.1, 60.0, params={"newClientOrderId": "dup"})
    exchange.create_order("BTC/USDT", "market", "buy", 0.1, params={"newClientOrderId": "filled"})
    exchange.create_order(
        "BTC/USDT", "market", "buy", 0.1, params={"newClientOrderId": "filled"}
    )  # accepted again
    assert sum(o.client_id == "filled" for o in emu.engine.orders) == 2


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("disconnect", ccxt.NetworkError),
        ("rate_limit", ccxt.DDoSProtection),
        ("error", ccxt.ExchangeNotAvailable),
        ("timeout", ccxt.RequestTimeout),
        ("drop", ccxt.NetworkError),
    ],
)
def test_faults_reach_ccxt_as_its_own_exception_classes(emulator, fault, expected):
    emu = emulator(bar_seconds=60.0)
    exchange = _ccxt(emu.url)
    emu.set_faults(FaultPlan(seed=3, timeout_delay=0.5, retry_after=0.25, **{fault: 1.0}))
    with pytest.raises(expected):
        exchange.fetch_balance()
    if fault == "rate_limit":
        assert exchange.last_response_headers["Retry-After"] == "0.25"


def test_a_dropped_answer_still_books_the_order(emulator):
    emu = emulator(bar_seconds=60.0)
    exchange = _ccxt(emu.url)
    emu.set_faults(FaultPlan(drop=1.0))
    with pytest.raises(ccxt.NetworkError):
        exchange.create_order("BTC/USDT", "market", "buy", 0.1, params={"newClientOrderId": "lost"})
    assert [o.client_id for o in emu.engine.orders] == ["lost"]
    assert emu.engine.orders[0].status == "FILLED"


def test_replay_clock_runs_at_the_requested_speed(emulator):
    emu = emulator(start_index=100, bar_seconds=0.05)
    t0 = emu.engine.now()
    time.sleep(0.2)
    advanced = (emu.engine.now() - t0) / TF_MS
    assert 3 <= advanced <= 6
