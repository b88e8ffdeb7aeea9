"""kronos-bt: Kronos forecasts inside backtrader (indicators, strategies, walk-forward, reports, paper trading)."""
