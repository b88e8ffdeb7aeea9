"""Old import paths of the exchange and emulator modules (moved out of ``paper/``) still work for one release."""

from __future__ import annotations

import importlib

import pytest

import kronos_strategies.emulator as emulator
import kronos_strategies.exchange as exchange
import kronos_strategies.paper.ccxt_broker as ccxt_broker

MOVED = [
    ("kronos_strategies.paper.exchange", "ExchangeClient", exchange.ExchangeClient),
    ("kronos_strategies.paper.exchange", "make_exchange", exchange.make_exchange),
    ("kronos_strategies.paper.history", "load_ccxt_bars", exchange.load_ccxt_bars),
    ("kronos_strategies.paper.history", "_cache_dir", exchange.candle_cache_dir),
    ("kronos_strategies.paper.history", "_epoch_ms", exchange.epoch_ms),
    ("kronos_strategies.paper.livefeed", "download_history", exchange.download_history),
    ("kronos_strategies.paper.livefeed", "timeframe_ms", exchange.timeframe_ms),
    ("kronos_strategies.paper.emulator", "ExchangeEmulator", emulator.ExchangeEmulator),
    ("kronos_strategies.paper.matching", "MatchingEngine", emulator.MatchingEngine),
    ("kronos_strategies.paper", "FaultPlan", emulator.FaultPlan),
    ("kronos_strategies.paper", "ExchangeClient", exchange.ExchangeClient),
    ("kronos_strategies.paper.broker", "CcxtBroker", ccxt_broker.CcxtBroker),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED, ids=[f"{m}.{n}" for m, n, _ in MOVED])
def test_old_path_resolves_the_moved_object_with_a_deprecation_warning(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=r"the old path goes in 0\.3"):
        assert getattr(module, name) is new


def test_unknown_names_on_a_shim_are_attribute_errors():
    module = importlib.import_module("kronos_strategies.paper.exchange")
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        module.Nope  # noqa: B018


def test_epoch_ms_reads_dates_and_stamps_as_utc():
    assert exchange.epoch_ms("1970-01-02") == 86_400_000
    assert exchange.epoch_ms("1970-01-01T01:00:00+01:00") == 0
    assert exchange.epoch_ms("2024-03-01T00:00:00Z") == 1_709_251_200_000
