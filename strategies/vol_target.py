"""Volatility targeting: hold a long position sized so the forecast volatility matches a target."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from kronos_strategies.strategy import KronosStrategy


class VolTargetStrategy(KronosStrategy):
    """Long while ``signal > enter``, sized ``stake * min(max_leverage, target_vol / forecast_vol)``.

    The forecast volatility comes from the spread of the sample paths: the ``lower`` / ``upper``
    close quantiles at ``horizon`` are read as a normal interval, so
    ``vol = (upper - lower) / close / (z_upper - z_lower) / sqrt(horizon) * sqrt(periods_per_year)``.

    Params:
      - ``target_vol`` (0.15): annualised volatility to aim for
      - ``max_leverage`` (1.0): cap on exposure (above 1 needs a margin broker)
      - ``enter`` (0.0): signal level above which the strategy is long
      - ``periods_per_year`` (252): bars per year of the feed (the runner sets it from the data)
    """

    params = (("target_vol", 0.15), ("max_leverage", 1.0), ("enter", 0.0), ("periods_per_year", 252.0))

    def forecast_vol(self) -> float:
        """Annualised volatility implied by today's forecast band (nan when the band is empty)."""
        ind = self.kronos.p
        lo_q, hi_q = ind.quantiles
        z_width = NormalDist().inv_cdf(hi_q) - NormalDist().inv_cdf(lo_q)
        spread = (self.kronos.upper[0] - self.kronos.lower[0]) / self.data.close[0]
        per_bar = spread / z_width / math.sqrt(ind.horizon)
        return per_bar * math.sqrt(self.p.periods_per_year) if per_bar > 0 else math.nan

    def should_enter(self, signal: float, **kwargs: Any) -> int:
        return 1 if signal > self.p.enter else 0

    def should_exit(self, signal: float, side: int, **kwargs: Any) -> bool:
        return signal <= self.p.enter

    def size(self, signal: float, **kwargs: Any) -> float:
        vol = self.forecast_vol()
        if not math.isfinite(vol):
            return 0.0
        return min(self.p.max_leverage, self.p.target_vol / vol) * self.p.stake
