"""ExchangeClient: error translation, retries with Retry-After, look-up before re-send, precision and limits."""

from __future__ import annotations

import time

import pytest

from kronos_strategies.emulator import FaultPlan
from kronos_strategies.errors import ConfigError, OrderRejectedError, TemporaryExchangeError
from kronos_strategies.exchange.client import (
    ExchangeAuthError,
    ExchangeClient,
    OrderInFlightError,
    make_exchange,
)

from .helpers import API_KEY, exchange_client


@pytest.mark.parametrize("fault", ["drop", "timeout", "error", "disconnect"])
def test_an_ambiguous_failure_is_looked_up_not_sent_twice(emulator, fault):
    emu = emulator(bar_seconds=60.0)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the first retry finds the network healed
        waits.append(seconds)
        emu.set_faults(FaultPlan())

    client = exchange_client(emu.url, sleep=sleep)
    emu.set_faults(FaultPlan(seed=5, timeout_delay=0.5, **{fault: 1.0}))
    if fault == "disconnect":  # no answer at all: it may still arrive within recvWindow, so no re-send yet
        with pytest.raises(OrderInFlightError):
            client.place_order("kbt-test-1", "buy", "market", 0.2)
        assert emu.engine.orders == []
        time.sleep(max(0.0, client.in_flight_until["kbt-test-1"] - time.time()))
        order = client.place_order("kbt-test-1", "buy", "market", 0.2, maybe_sent=True)
    else:
        order = client.place_order("kbt-test-1", "buy", "market", 0.2)
    booked = [o for o in emu.engine.orders if o.client_id == "kbt-test-1"]
    assert len(booked) == 1 and waits
    assert order["clientOrderId"] == "kbt-test-1" and str(order["id"]) == str(booked[0].order_id)
    assert order["filled"] == pytest.approx(0.2)


def test_rate_limit_waits_for_retry_after(emulator):
    emu = emulator(bar_seconds=60.0)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        emu.set_faults(FaultPlan())

    client = exchange_client(emu.url, sleep=sleep)
    emu.set_faults(FaultPlan(rate_limit=1.0, retry_after=0.037))
    assert client.call("fetch_balance")["USDT"]["total"] == pytest.approx(10_000)
    assert waits == [pytest.approx(0.037)]


def test_persistent_outage_ends_in_a_temporary_error(emulator):
    emu = emulator(bar_seconds=60.0)
    client = exchange_client(emu.url, retries=2, sleep=lambda s: None)
    emu.set_faults(FaultPlan(disconnect=1.0))
    with pytest.raises(TemporaryExchangeError, match="NetworkError"):
        client.call("fetch_balance")
    assert emu.requests >= 3


def test_rejections_are_not_retried(emulator):
    emu = emulator(bar_seconds=60.0)
    client = exchange_client(emu.url, sleep=lambda s: pytest.fail("a rejection must not be retried"))
    before = emu.requests
    with pytest.raises(OrderRejectedError, match="InsufficientFunds"):
        client.place_order("kbt-big", "buy", "market", 500.0)
    assert emu.requests - before == 1 and emu.engine.orders == []


def test_bad_keys_are_an_auth_error_without_retry(emulator):
    emu = emulator(bar_seconds=60.0)
    exchange = make_exchange("binance", url=emu.url, api_key=API_KEY, secret="wrong", timeout_ms=300)
    client = ExchangeClient(exchange, "BTC/USDT", sleep=lambda s: pytest.fail("auth errors are final"))
    client.load("1m")
    with pytest.raises(ExchangeAuthError, match="API key"):
        client.call("fetch_balance")


def test_amounts_and_prices_are_rounded_and_checked_against_limits(emulator):
    client = exchange_client(emulator(bar_seconds=60.0).url)
    assert client.round_order("limit", 0.123456789, 101.23456, 100.0) == (0.12345, 101.23)
    with pytest.raises(OrderRejectedError, match="notional"):
        client.round_order("market", 0.01, None, 100.0)
    with pytest.raises(OrderRejectedError, match="precision|amount"):
        client.round_order("market", 0.000001, None, 100.0)


def test_unknown_exchange_symbol_and_timeframe_name_the_fix(emulator):
    url = emulator(bar_seconds=60.0).url
    with pytest.raises(ConfigError, match="did you mean 'binance'"):
        make_exchange("binanse")
    with pytest.raises(ConfigError, match="did you mean 'BTC/USDT'"):
        ExchangeClient(make_exchange("binance", url=url), "BTC/USDX").load()
    with pytest.raises(ConfigError, match="no timeframe '7m'"):
        ExchangeClient(make_exchange("binance", url=url), "BTC/USDT").load("7m")


def test_ccxt_own_order_retries_are_off():
    assert make_exchange("binance").options["maxRetriesOnFailure"] == 0


@pytest.mark.parametrize("late_s", [0.45, 0.8])  # executed within recvWindow (0.5 s) / refused after it
def test_an_order_executed_after_the_client_timed_out_is_placed_once(emulator, late_s):
    """Issue 11 bug 2: the POST reaches the exchange after our 0.3 s timeout; the look-up must wait it out."""
    emu = emulator(bar_seconds=60.0)
    client = exchange_client(emu.url, sleep=lambda s: emu.set_faults(FaultPlan()))
    assert client.exchange.options["recvWindow"] == 500
    emu.set_faults(FaultPlan(seed=1, late=1.0, late_delay=late_s))
    cid, order = "kbt-late-1", None
    deadline = time.time() + 5
    maybe_sent = False
    while order is None and time.time() < deadline:
        try:
            order = client.place_order(cid, "buy", "market", 0.2, maybe_sent=maybe_sent)
        except OrderInFlightError:
            maybe_sent = True
            time.sleep(0.05)
    booked = [o for o in emu.engine.orders if o.client_id == cid]
    assert len(booked) == 1, f"{len(booked)} exchange orders for one intent"
    assert str(order["id"]) == str(booked[0].order_id)
    assert sum(t.qty for t in emu.engine.trades) == pytest.approx(0.2)
