"""Paper-trading fixtures: seeded candles and exchange emulators on 127.0.0.1 (free ports), stopped after use."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from kronos_strategies.emulator import ExchangeEmulator  # noqa: E402

from .helpers import start_emulator, write_candles  # noqa: E402


@pytest.fixture(scope="session")
def candles_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 seeded 1-minute candles."""
    return write_candles(tmp_path_factory.mktemp("candles") / "btcusdt_1m.csv", n=400, seed=0)


@pytest.fixture
def emulator(candles_csv: Path) -> Iterator[Callable[..., ExchangeEmulator]]:
    """Factory: ``emulator(start_index=..., bar_seconds=..., faults=...)`` starts one replaying ``candles_csv``."""
    started: list[ExchangeEmulator] = []

    def start(**kwargs: object) -> ExchangeEmulator:
        kwargs.setdefault("start_index", 100)
        kwargs.setdefault("bar_seconds", 0.02)
        emu = start_emulator(candles_csv, **kwargs)  # type: ignore[arg-type]
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()
