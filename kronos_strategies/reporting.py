"""Backtest reports: quantstats tear-sheet, metrics JSON, price chart PNG and a reproducibility manifest.

Everything is written from data already in memory: the benchmark is a returns Series of the same
asset (never a ticker string, which would make quantstats download it), charts use matplotlib's object API
(``kronos_model.plotting``: no global backend is selected).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import math
import platform
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_model.forecast import Forecast
from kronos_model.plotting import new_figure, save_figure

from .errors import ConfigError

__all__ = [
    "band_line",
    "band_summary",
    "bar_calendar",
    "new_figure",
    "package_versions",
    "performance_metrics",
    "periods_per_year",
    "plot_backtest",
    "plot_fan",
    "write_json",
    "write_tearsheet",
]

log = logging.getLogger(__name__)

_PACKAGES: tuple[str, ...] = (
    "kronos-bt", "torch", "numpy", "pandas", "backtrader", "quantstats", "matplotlib", "safetensors", "arch",
)  # fmt: skip


# Days per year: calendar, weekdays (FX sessions) and exchange trading days.
_CALENDAR_DAYS, _WEEKDAYS, _TRADING_DAYS = 365.25, 365.25 * 5 / 7, 252.0


def bar_calendar(index: pd.DatetimeIndex) -> tuple[str, pd.Timedelta]:
    """The data's trading calendar and median bar interval.

    ``"24/7"`` (weekend bars on most weekends), ``"weekdays"`` (intraday bars filling whole weekdays: FX),
    ``"sessions"`` (daily bars on weekdays, or intraday exchange hours). A few stray weekend bars (FX's
    Sunday open) do not make data 24/7.
    """
    index = pd.DatetimeIndex(index)
    if len(index) < 3:
        raise ConfigError("need at least 3 bars to infer the bar interval for annualisation")
    step = pd.Timedelta(np.median(np.diff(index.asi8)), unit=index.unit)
    weekend = index.day_of_week >= 5
    if weekend.mean() > 0.1:  # 24/7 data has 2/7 of its bars on weekends
        return "24/7", step
    if step >= pd.Timedelta(hours=20) or not (~weekend).any():
        return "sessions", step
    on_weekdays = index[~weekend]
    bars_per_day = len(on_weekdays) / len(np.unique(on_weekdays.normalize()))
    return ("weekdays" if bars_per_day >= 0.8 * (pd.Timedelta(days=1) / step) else "sessions"), step


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year from the data's own calendar (see :func:`bar_calendar`), for annualisation.

    24/7: 365 daily bars, 8766 hourly. Weekday daily bars are exchange trading days (252) unless nearly
    every weekday has a bar (FX: 261); FX intraday counts weekday sessions (24 x 261 = 6261 hourly);
    exchange hours count bars per trading day x 252. Weekly and longer bars use calendar time.
    """
    index = pd.DatetimeIndex(index)
    kind, step = bar_calendar(index)
    days = step / pd.Timedelta(days=1)
    if days > 1.5:
        return _CALENDAR_DAYS / days
    if kind == "24/7":
        return 365.0 if math.isclose(days, 1.0, rel_tol=0.05) else _CALENDAR_DAYS / days
    if kind == "weekdays":
        return float(round(_WEEKDAYS / days))
    dates = index[index.day_of_week < 5].normalize()
    if math.isclose(days, 1.0, rel_tol=0.05):
        weekdays = np.busday_count(dates[0].date(), dates[-1].date()) + 1
        return 261.0 if len(np.unique(dates)) / max(weekdays, 1) > 0.985 else _TRADING_DAYS
    return float(len(dates) / len(np.unique(dates)) * _TRADING_DAYS)  # exchange hours


def performance_metrics(
    returns: pd.Series,
    *,
    periods: float,
    exposure: pd.Series | None = None,
    fills: Sequence[Mapping[str, Any]] = (),
    trade_pnls: Sequence[float] = (),
    equity: pd.Series | None = None,
) -> dict[str, float | int | None]:
    """Headline numbers of one return stream (per-bar simple returns, first bar = start).

    Sharpe, Sortino and CAGR use quantstats with ``periods`` per year (so they match the tear-sheet);
    exposure is the mean fraction of bars with a position, turnover the traded value per year divided
    by the mean equity, hit rate the share of closed trades with positive P&L after commission.
    """
    import quantstats as qs

    returns = pd.Series(returns, dtype=float)
    growth = (1.0 + returns).cumprod()
    drawdown = growth / growth.cummax() - 1.0
    years = len(returns) / periods
    with _quiet():
        sharpe = float(qs.stats.sharpe(returns, periods=periods))
        sortino = float(qs.stats.sortino(returns, periods=periods))
        cagr = float(qs.stats.cagr(returns, periods=periods))
    traded = float(sum(f["value"] for f in fills))
    mean_equity = float(equity.mean()) if equity is not None and len(equity) else float("nan")
    wins = [p for p in trade_pnls if p > 0]
    return {
        "bars": int(len(returns)),
        "periods_per_year": float(periods),
        "total_return": float(growth.iloc[-1] - 1.0) if len(growth) else 0.0,
        "cagr": _finite(cagr),
        "sharpe": _finite(sharpe),
        "sortino": _finite(sortino),
        "max_drawdown": float(drawdown.min()) if len(drawdown) else 0.0,
        "volatility": _finite(float(returns.std(ddof=1) * math.sqrt(periods))),
        "trades": int(len(trade_pnls)),
        "orders_filled": int(len(fills)),
        "exposure": None if exposure is None else float((exposure.abs() > 1e-9).mean()),
        "turnover": _finite(traded / mean_equity / years) if years > 0 else None,
        "hit_rate": float(len(wins) / len(trade_pnls)) if trade_pnls else None,
    }


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence quantstats' and matplotlib's chatter (font fallbacks, tick-label warnings)."""
    font_log = logging.getLogger("matplotlib.font_manager")
    level = font_log.level
    font_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        font_log.setLevel(level)


def write_tearsheet(
    returns: pd.Series,
    *,
    benchmark: pd.Series,
    output: str | Path,
    title: str = "Kronos backtest",
    periods: float = 252,
) -> Path:
    """Write a quantstats HTML tear-sheet of ``returns`` against the ``benchmark`` returns Series.

    Both are per-bar simple returns on the same DatetimeIndex. ``benchmark`` must be data (e.g.
    buy-and-hold of the same asset): a ticker string is refused because quantstats would download it.
    """
    import matplotlib.pyplot as plt  # quantstats draws with pyplot; only its own figures are closed below
    import quantstats as qs

    if not isinstance(benchmark, pd.Series):
        raise ConfigError(
            f"benchmark must be a returns Series (e.g. buy-and-hold of the traded asset), not {type(benchmark).__name__}"
        )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    strat, bench = (
        _for_quantstats(returns, "Strategy"),
        _for_quantstats(benchmark, benchmark.name or "Benchmark"),
    )
    ppy = int(round(periods))
    # match_dates=False: quantstats would otherwise cut the flat first bar, so a strategy that loses from
    # its first move and never recovers starts "in" a drawdown that drawdown_details cannot see (Max
    # Drawdown "-"), and the period would differ from metrics.json's. x_compat: pandas >= 3 draws bars over
    # a DatetimeIndex at period positions, and quantstats' EOY chart labels ticks by position (one off).
    figures_before = set(plt.get_fignums())
    with _quiet(), pd.plotting.plot_params.use("x_compat", True):
        if strat.std() > 0:
            qs.reports.html(strat, benchmark=bench, output=str(output), title=title, periods_per_year=ppy,
                            benchmark_title=bench.name, match_dates=False)  # fmt: skip
        else:  # quantstats cannot regress a constant series on the benchmark
            log.warning("strategy returns are constant (it never traded): tear-sheet without the benchmark")
            qs.reports.html(strat, output=str(output), title=title, periods_per_year=ppy, match_dates=False,
                            parameters={"Note": "the strategy never traded; no benchmark comparison"})  # fmt: skip
    for number in set(plt.get_fignums()) - figures_before:
        plt.close(number)
    return output


def _for_quantstats(series: pd.Series, name: str) -> pd.Series:
    """quantstats wants a naive DatetimeIndex; keep local wall-clock times."""
    out = pd.Series(series, dtype=float).copy()
    if isinstance(out.index, pd.DatetimeIndex) and out.index.tz is not None:
        out.index = out.index.tz_localize(None)
    out.name = name
    return out


def plot_backtest(
    close: pd.Series,
    *,
    lower: pd.Series,
    upper: pd.Series,
    horizon: int,
    fills: pd.DataFrame,
    output: str | Path,
    title: str = "",
) -> Path:
    """Close price with the forecast band (drawn at the bar it forecasts) and buy/sell markers; PNG."""
    fig, ax = new_figure(figsize=(12, 5), dpi=110)
    ax.plot(close.index, close.to_numpy(), color="black", lw=0.9, label="close")
    # The band made at bar t describes bar t + horizon: shift it forward so it lines up with that bar.
    lo, hi = lower.shift(horizon), upper.shift(horizon)
    ax.fill_between(close.index, lo.to_numpy(), hi.to_numpy(), color="tab:blue", alpha=0.25, lw=0,
                    label=f"forecast band ({horizon} bars ahead)")  # fmt: skip
    if len(fills):
        buys, sells = fills[fills["size"] > 0], fills[fills["size"] < 0]
        ax.scatter(
            buys["executed"], buys["price"], marker="^", color="tab:green", s=28, label="buy", zorder=3
        )
        ax.scatter(
            sells["executed"], sells["price"], marker="v", color="tab:red", s=28, label="sell", zorder=3
        )
    return _finish_time_chart(fig, ax, title, output)


def plot_fan(
    history: pd.Series, forecast: Forecast, *, output: str | Path, quantiles: Sequence[float] = (0.1, 0.9)
) -> Path:
    """Fan chart: the last history closes, the sample-path quantile band and the mean path; PNG."""
    fig, ax = new_figure(figsize=(10, 4.5), dpi=110)
    ax.plot(history.index, history.to_numpy(), color="black", lw=1.0, label="history")
    steps = forecast.timestamps
    band = forecast.quantile(list(quantiles), "close")
    ax.fill_between(steps, band[0], band[-1], color="tab:blue", alpha=0.25, lw=0,
                    label=f"q{quantiles[0]:g}-q{quantiles[-1]:g}")  # fmt: skip
    for path in forecast.paths("close")[: min(20, forecast.sample_count)]:
        ax.plot(steps, path, color="tab:blue", alpha=0.15, lw=0.6)
    ax.plot(steps, forecast.mean[:, forecast.columns.index("close")], color="tab:blue", lw=1.5, label="mean")
    title = f"Kronos forecast: {forecast.sample_count} paths, {forecast.pred_len} bars"
    return _finish_time_chart(fig, ax, title, output)


def _finish_time_chart(fig: Any, ax: Any, title: str, output: str | Path) -> Path:
    """Title, legend, grid and dated x axis of a price chart, then save it."""
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return save_figure(fig, output)


def band_summary(
    stats: Any, *, horizon: int, quantiles: Sequence[float], calibration: Any = None
) -> dict[str, Any]:
    """Realised coverage of the indicator's band over the run (and of the raw model band), for metrics.json.

    ``stats`` is the indicator's ``ForecastStats``: forecast bars whose target bar (``horizon`` later) was seen.
    """
    from kronos_model.calibration import CalibrationSpec

    lo, hi = (float(q) for q in quantiles)
    spec = CalibrationSpec.coerce(calibration, target=round(hi - lo, 12), where="indicator.calibration")
    return {"horizon": int(horizon), "quantiles": [lo, hi], "nominal": round(hi - lo, 12), **stats.band_coverage(),
            "calibration": None if spec is None else spec.to_dict()}  # fmt: skip


def band_line(summary: Mapping[str, Any]) -> str | None:
    """One summary line on the band's realised coverage (None before any outcome was seen)."""
    if not summary.get("scored"):
        return None
    lo, hi = summary["quantiles"]
    text = (f"band: q{lo:g}-q{hi:g} {summary['horizon']} bars ahead covered {summary['coverage']:.1%} of "
            f"{summary['scored']} outcomes (nominal {summary['nominal']:.0%}")  # fmt: skip
    cal = summary.get("calibration")
    if cal:
        text += f"; raw model band {summary['raw_coverage']:.1%}; calibration {cal['method']}"
    return text + ")"


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape a run's numbers, plus Python."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def write_json(data: Mapping[str, Any], output: str | Path) -> Path:
    """Write ``data`` as indented JSON (timestamps and numpy scalars as strings / numbers)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")
    return output


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | np.datetime64):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)
