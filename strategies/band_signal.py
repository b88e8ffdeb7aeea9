"""Example of extending ``KronosSignal``: add a ``width`` line and a risk-adjusted signal."""

from __future__ import annotations

from kronos_model.forecast import Forecast
from kronos_strategies.indicator import KronosSignal


class KronosBand(KronosSignal):
    """``KronosSignal`` plus the relative width of the forecast band; signal = expected return / width.

    Lines:
      - ``width``: ``(upper - lower) / last close`` at ``horizon``, the forecast's relative spread

    Use it in a YAML backtest with ``indicator.type: kronos_strategies.builtin.band_signal:KronosBand``.
    """

    lines = ("width",)
    plotlines = dict(width=dict(_plotskip=True))

    def extras(self, forecast: Forecast) -> dict[str, float]:
        lo, hi = forecast.return_quantile(list(self.p.quantiles), self.p.horizon)
        return {"width": float(hi - lo)}

    def compute_signal(self, forecast: Forecast) -> float:
        lo, hi = forecast.return_quantile(list(self.p.quantiles), self.p.horizon)
        width = float(hi - lo)
        return forecast.expected_return(self.p.horizon) / width if width > 0 else 0.0
