"""kronos-bt: Kronos forecasts inside backtrader (indicators, strategies, walk-forward, reports, paper trading).

The public names below are imported on first use, so ``import kronos_strategies`` stays light: backtrader,
dask and ccxt load only when a name that needs them is touched.
"""

from __future__ import annotations

from .lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
