"""Shared test setup: offline hub, deterministic CPU torch, the reference fixture paths."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tiny"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_predictor():
    """KronosPredictor over the reference's random-init tiny checkpoint (real code, meaningless forecasts)."""
    from kronos_model import Kronos, KronosPredictor, KronosTokenizer

    return KronosPredictor(
        Kronos.from_pretrained(FIXTURES / "predictor"),
        KronosTokenizer.from_pretrained(FIXTURES / "tokenizer"),
        device="cpu",
        max_context=512,
    )


@pytest.fixture(scope="session")
def sp500():
    """Daily S&P 500 OHLCV shipped by the `arch` package, lower-case columns."""
    from arch.data import sp500

    raw = sp500.load()
    frame = raw.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
    return frame
