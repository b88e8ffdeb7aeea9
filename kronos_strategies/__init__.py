"""kronos-bt: Kronos forecasts inside backtrader (indicators, strategies, walk-forward, reports, paper trading).

The public names below are imported on first use, so ``import kronos_strategies`` stays light: backtrader,
dask and ccxt load only when a name that needs them is touched.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module (relative to this package) that defines it
_EXPORTS: dict[str, str] = {
    "KronosSignal": ".indicator",
    "KronosStrategy": ".strategy",
    "KronosFeed": ".feeds",
    "read_ohlcv": ".feeds",
    "make_feed": ".feeds",
    "load_dataset": ".feeds",
    "ForecastCache": ".cache",
    "run_backtest": ".runner",
    "BacktestResult": ".runner",
    "load_config": ".config",
    "BacktestConfig": ".config",
    "performance_metrics": ".reporting",
    "write_tearsheet": ".reporting",
    "run_walkforward": ".walkforward",
    "WalkForwardConfig": ".walkforward",
    "run_sweep": ".sweep",
    "ConfigError": ".errors",
    "ExchangeError": ".errors",
    "TemporaryExchangeError": ".errors",
    "OrderRejectedError": ".errors",
    "KronosError": ".errors",
    "LookaheadError": ".errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562) and cache the name here."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'kronos_strategies' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
