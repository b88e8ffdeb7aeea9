"""Universe backtests: rank many assets by their Kronos forecasts and trade them in one backtrader portfolio.

``universe:`` in a backtest YAML replaces ``data:`` (see :mod:`.config`); :func:`.runner.run_universe_backtest`
loads and aligns the assets, forecasts every window, runs a :class:`.strategy.UniverseStrategy` and writes the
portfolio tear-sheet and the cross-sectional signal report. Submodules import backtrader and torch lazily
through the runner, so reading a config stays light.
"""
