"""Universe test helpers: small multi-asset frames cut from the arch S&P 500 bars (offline), tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.strategies.conftest import (  # noqa: F401 - shared fixtures
    FAST,
    TINY,
    CountingPredictor,
    _one_torch_thread,
    counting_predictor,
    sp500_bars,
)

NAMES = ("A", "B", "C", "D", "E")


def make_assets(sp500: pd.DataFrame, n: int = 5, bars: int = 70) -> dict[str, pd.DataFrame]:
    """``n`` distinct assets: the same 2015 bars scaled and with each asset's own daily noise."""
    base = sp500.loc["2015-01-01":].iloc[:bars]
    out = {}
    for i, name in enumerate(NAMES[:n]):
        rng = np.random.default_rng(i)
        drift = np.exp(np.cumsum(rng.normal(0, 0.01, len(base))))
        f = base.copy()
        for col in ("open", "high", "low", "close"):
            f[col] = base[col] * drift * (1 + 0.1 * i)
        f["high"] = f[["open", "high", "low", "close"]].max(axis=1)
        f["low"] = f[["open", "high", "low", "close"]].min(axis=1)
        out[name] = f
    return out


def universe_config(tmp_path: Path, strategy: str = "topk", **params: Any) -> dict[str, Any]:
    """A fast universe config on the tiny model; ``frames=`` replaces its assets in run_universe_backtest."""
    return {
        "name": "uni",
        "universe": {"assets": [{"dataset": "sp500", "name": n} for n in NAMES]},
        "model": {"predictor": str(TINY / "predictor"), "tokenizer": str(TINY / "tokenizer")},
        "indicator": {**FAST, "cache_dir": str(tmp_path / "cache")},
        "strategy": {"name": strategy, "params": params},
        "broker": {"cash": 100000, "commission": 0.0005, "slippage": 0.0002},
        "output": {"dir": str(tmp_path / "run"), "tearsheet": False, "chart": False},
        "engine": {"mode": "vectorised", "progress": False},
    }


@pytest.fixture
def assets(sp500_bars: pd.DataFrame) -> dict[str, pd.DataFrame]:  # noqa: F811 - the imported fixture
    return make_assets(sp500_bars)
