"""Reports of a universe backtest: portfolio tear-sheet vs equal weight, and the cross-sectional signal report.

Signal report (all over the trading period, one cross-section per union bar):
- IC / RankIC: Pearson / Spearman correlation across assets between the signal at t and each asset's realised
  return from its bar at t to its ``horizon``-th next bar (its own bars, so a missing bar is never filled);
  mean, std, ICIR (mean / std) and t-stat (ICIR * sqrt(bars); overlapping horizons make it optimistic);
- IC by horizon: the expected return to step h against the realised return to step h, h = 1..pred_len;
- quantile portfolios: mean realised return of each signal quantile and top minus bottom;
- IC needs at least 3 assets with a signal and a realised return at a bar (with 2 it is always +-1);
- signal autocorrelation (Spearman of consecutive cross-sections) and top-quantile turnover.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import reporting
from .calendar import AlignedUniverse
from .signals import SignalTable

if TYPE_CHECKING:
    from .runner import UniverseResult

__all__ = ["cross_sectional_ic", "forward_returns", "ic_summary", "signal_report", "write_universe_reports"]

_MIN_NAMES = 3  # a cross-section with fewer valid assets gives no IC


def forward_returns(universe: AlignedUniverse, step: int) -> pd.DataFrame:
    """[union bars x assets] return from each asset's bar at t to its ``step``-th next bar (NaN without one)."""
    out = {}
    for name, frame in universe.frames.items():
        close = frame["close"]
        out[name] = (close.shift(-step) / close - 1.0).reindex(universe.index)
    return pd.DataFrame(out, index=universe.index)


def cross_sectional_ic(signal: pd.DataFrame, forward: pd.DataFrame, *, rank: bool = False) -> pd.Series:
    """Per bar, the correlation across assets of ``signal`` and ``forward`` (Spearman when ``rank``).

    Only assets with both values count; a bar with fewer than 3 of them, or a constant side, has no IC.
    """
    s, f = signal.to_numpy(float), forward.to_numpy(float)
    ok = np.isfinite(s) & np.isfinite(f)
    s, f = np.where(ok, s, np.nan), np.where(ok, f, np.nan)
    if rank:  # average ranks among the valid pairs, as pandas' Spearman
        s, f = pd.DataFrame(s).rank(axis=1).to_numpy(), pd.DataFrame(f).rank(axis=1).to_numpy()
    n = ok.sum(axis=1)
    safe = np.maximum(n, 1)[:, None]
    ds = np.where(ok, s - np.where(ok, s, 0).sum(axis=1, keepdims=True) / safe, 0.0)
    df = np.where(ok, f - np.where(ok, f, 0).sum(axis=1, keepdims=True) / safe, 0.0)
    vs, vf = (ds * ds).sum(axis=1), (df * df).sum(axis=1)
    good = (n >= _MIN_NAMES) & (vs > 0) & (vf > 0)
    out = np.full(len(s), np.nan)
    out[good] = (ds * df).sum(axis=1)[good] / np.sqrt(vs[good] * vf[good])
    return pd.Series(out, index=signal.index)


def ic_summary(ic: pd.Series) -> dict[str, float | int | None]:
    """Mean, std, ICIR and t-stat of a per-bar IC series (bars without an IC are left out)."""
    ic = ic.dropna()
    n = len(ic)
    mean = float(ic.mean()) if n else math.nan
    std = float(ic.std(ddof=1)) if n > 1 else math.nan
    icir = mean / std if n > 1 and std > 0 else math.nan
    return {"mean": _f(mean), "std": _f(std), "icir": _f(icir), "t_stat": _f(icir * math.sqrt(n)), "bars": n}


def _f(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _quantile_returns(
    signal: pd.DataFrame, forward: pd.DataFrame, q: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per bar, the mean forward return of each signal quantile (1 = lowest), and each asset's quantile."""
    ok = signal.notna() & forward.notna()
    n = ok.sum(axis=1)
    pct = signal.where(ok).rank(axis=1, method="first").div(n, axis=0)
    labels = np.ceil(pct * q).clip(1, q).where(ok)
    labels[n < q] = np.nan  # each quantile needs a name
    fwd = forward.where(labels.notna())
    rows = {f"q{k}": fwd.where(labels == k).mean(axis=1) for k in range(1, q + 1)}
    return pd.DataFrame(rows, index=signal.index), labels


def signal_report(
    table: SignalTable, universe: AlignedUniverse, *, horizon: int, quantiles: int = 5
) -> dict[str, Any]:
    """The cross-sectional signal statistics of a universe run (see the module docstring)."""
    live = table.index >= universe.start
    signal = table.frame("signal")[live]
    forward = forward_returns(universe, horizon)[live]
    ic = cross_sectional_ic(signal, forward)
    rank_ic = cross_sectional_ic(signal, forward, rank=True)
    by_h = {}
    for h in range(1, table.expected.shape[2] + 1):
        fwd = forward_returns(universe, h)[live]
        exp = table.expected_frame(h)[live]
        by_h[str(h)] = {"ic": ic_summary(cross_sectional_ic(exp, fwd))["mean"],
                        "rank_ic": ic_summary(cross_sectional_ic(exp, fwd, rank=True))["mean"]}  # fmt: skip
    q = min(quantiles, max(2, len(universe.names) // 2))
    qret, labels = _quantile_returns(signal, forward, q)
    means = qret.mean()
    prev = signal.shift(1)
    auto = cross_sectional_ic(signal, prev, rank=True)
    top = labels == q
    was_top = top.shift(1, fill_value=False)
    changed = (top & ~was_top).sum(axis=1)
    counts = top.sum(axis=1)
    turnover = (changed / counts.where(counts > 0))[was_top.any(axis=1)]
    return {
        "horizon": horizon,
        "ic": ic_summary(ic),
        "rank_ic": ic_summary(rank_ic),
        "ic_by_horizon": by_h,
        "quantiles": {
            "count": q,
            "mean_forward_return": {k: _f(v) for k, v in means.items()},
            "top_minus_bottom": _f(float(means.iloc[-1] - means.iloc[0])),
        },
        "signal_autocorrelation": _f(float(auto.mean())),
        "top_quantile_turnover": _f(float(turnover.mean())) if len(turnover) else None,
        "series": {"ic": ic, "rank_ic": rank_ic, "quantile_returns": qret},
    }


def plot_universe(result: UniverseResult, output: Path, title: str) -> Path:
    """Equity vs equal weight, cumulative IC / RankIC, quantile mean returns and the weights over time."""
    import matplotlib.pyplot as plt

    sm = result.signal_metrics
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), dpi=110)
    ax = axes[0, 0]
    ax.plot((1 + result.returns).cumprod(), label="strategy", color="tab:blue")
    ax.plot((1 + result.benchmark).cumprod(), label=result.benchmark.name, color="grey")
    ax.set_title("growth of 1")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.plot(sm["series"]["ic"].fillna(0).cumsum(), label="IC")
    ax.plot(sm["series"]["rank_ic"].fillna(0).cumsum(), label="RankIC")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_title(f"cumulative IC (horizon {sm['horizon']})")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    means = pd.Series(sm["quantiles"]["mean_forward_return"], dtype=float) * 1e4
    ax.bar(means.index, means.fillna(0).to_numpy(), color="tab:green")
    ax.set_title(f"mean {sm['horizon']}-bar forward return by signal quantile (bp)")
    ax = axes[1, 1]
    w = result.weights.drop(columns="cash")
    ax.stackplot(w.index, w.clip(lower=0).T.to_numpy(), labels=list(w.columns), alpha=0.8)
    if (w < 0).any().any():
        ax.stackplot(w.index, w.clip(upper=0).T.to_numpy(), alpha=0.8)
    ax.set_title("weights")
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    for a in axes.flat:
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.autofmt_xdate()
    return reporting.save_figure(fig, output)


def write_universe_reports(result: UniverseResult, out: Path) -> dict[str, Path]:
    """Write metrics.json, tearsheet.html, universe.png, weights.csv, trades.csv, signals.csv, manifest.json."""
    cfg = result.config
    out.mkdir(parents=True, exist_ok=True)
    names = result.universe.names
    title = cfg.output.title or f"{cfg.name}: {cfg.strategy.name} on {len(names)} assets"
    sm = {
        k: v
        for k, v in result.signal_metrics.items()
        if k not in ("series", "data_fingerprints", "benchmark_assets")
    }
    s = result.forecast_stats
    files: dict[str, Path] = {}
    files["metrics"] = reporting.write_json(
        {
            "strategy": result.metrics,
            "benchmark": result.benchmark_metrics,
            "benchmark_assets": result.signal_metrics.get("benchmark_assets", {}),  # buy-and-hold of a named asset
            "signal": sm,
            "forecasts": {"windows": s.windows, "computed": s.computed, "cache_hits": s.cache_hits,
                          "model_seconds": round(s.seconds, 3)},
            "universe": {"assets": names, "delisted": {n: str(result.universe.last_bar[n]) for n in result.universe.delisted}},
            "period": {"start": result.returns.index[0], "end": result.returns.index[-1]},
            "timings": {k: round(v, 3) for k, v in result.timings.items()},
            "walkforward": result.walkforward,  # one entry per fold (empty without a finetune: block)
        },
        out / "metrics.json",
    )  # fmt: skip
    if cfg.output.tearsheet:
        files["tearsheet"] = reporting.write_tearsheet(result.returns, benchmark=result.benchmark,
                                                       output=out / "tearsheet.html", title=title,
                                                       periods=result.periods_per_year)  # fmt: skip
    if cfg.output.chart:
        files["chart"] = plot_universe(result, out / "universe.png", title)
    result.weights.to_csv(out / "weights.csv", index_label="timestamp", float_format="%.6f")
    files["weights"] = out / "weights.csv"
    result.fills.to_csv(out / "trades.csv", index=False)
    files["trades"] = out / "trades.csv"
    live = result.table.index >= result.universe.start
    result.table.frame("signal")[live].to_csv(out / "signals.csv", index_label="timestamp")
    files["signals"] = out / "signals.csv"
    files["manifest"] = reporting.write_json(
        {
            "name": cfg.name,
            "config_file": cfg.source,
            "config": cfg.to_dict(),
            "model_fingerprint": result.model_fingerprint,
            "data_fingerprints": result.signal_metrics.get("data_fingerprints", {}),
            "seed": cfg.indicator.seed,
            "packages": reporting.package_versions(),
            "created": pd.Timestamp.now(tz="UTC").isoformat(),
            "seconds": round(result.seconds, 3),
        },
        out / "manifest.json",
    )
    return files
