"""Forecast-skill metrics computed from sample paths with plain numpy, so any forecaster can be scored.

Conventions: windows (forecast origins) lie on axis 0, forecast steps on the last axis, and every
per-horizon metric is an array ``[H]`` averaged over windows. Sample axes are named in each docstring.
"""

from __future__ import annotations

import numpy as np

from .errors import ArgumentError

__all__ = [
    "METRIC_NAMES",
    "abs_step_returns",
    "central_interval",
    "coverage",
    "crps_samples",
    "hit_rate",
    "information_coefficient",
    "mae",
    "pearson",
    "qlike",
    "rank_information_coefficient",
    "rankdata",
    "rmse",
    "score_paths",
    "t_statistic",
]

# Order of the metrics returned by :func:`score_paths` (and of the report columns).
METRIC_NAMES: tuple[str, ...] = (
    "mae",
    "rmse",
    "hit_rate",
    "ic",
    "ic_t",
    "rank_ic",
    "rank_ic_t",
    "crps",
    "coverage",
    "width",
    "vol_mae",
    "vol_qlike",
    "vol_ic",
)


def mae(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Mean absolute error over windows (axis 0): ``[N, ...] -> [...]``."""
    return np.mean(np.abs(np.asarray(pred, np.float64) - actual), axis=0)


def rmse(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Root mean squared error over windows (axis 0): ``[N, ...] -> [...]``."""
    return np.sqrt(np.mean((np.asarray(pred, np.float64) - actual) ** 2, axis=0))


def hit_rate(pred_return: np.ndarray, realised_return: np.ndarray) -> np.ndarray:
    """Share of windows whose predicted return has the realised sign: ``[N, ...] -> [...]``.

    A window scores 1 when both signs agree, 0 when they differ, and 0.5 when either return is
    exactly zero (no call made, or nothing to call), so a flat forecast scores exactly 0.5.
    """
    prod = np.sign(pred_return) * np.sign(realised_return)
    return np.mean(np.where(prod == 0, 0.5, prod > 0), axis=0)


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation over axis 0 per column: ``[N, ...] -> [...]``; NaN where either side is constant."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    den = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum(axis=0))
    num = (xc * yc).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def _rank_1d(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a vector, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average-tie ranks (1-based) along axis 0, same shape as ``x``."""
    x = np.asarray(x, np.float64)
    if x.shape[0] == 0:
        return x.copy()
    return np.apply_along_axis(_rank_1d, 0, x)


def t_statistic(r: np.ndarray, n: float) -> np.ndarray:
    """t-statistic of a correlation ``r`` from ``n`` independent pairs: ``r * sqrt((n - 2) / (1 - r^2))``."""
    r = np.asarray(r, np.float64)
    if n <= 2:
        return np.full_like(r, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return r * np.sqrt((n - 2) / (1.0 - r**2))


def information_coefficient(
    pred: np.ndarray, realised: np.ndarray, n_eff: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """IC: Pearson correlation of predicted vs realised returns over windows, and its t-statistic.

    ``n_eff`` is the number of independent windows used for the t-statistic (default: all ``N``);
    pass fewer when windows overlap, because overlapping returns are not independent.
    """
    r = pearson(pred, realised)
    return r, t_statistic(r, np.shape(pred)[0] if n_eff is None else n_eff)


def rank_information_coefficient(
    pred: np.ndarray, realised: np.ndarray, n_eff: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """RankIC: Spearman correlation (Pearson of average-tie ranks) over windows, and its t-statistic."""
    return information_coefficient(rankdata(pred), rankdata(realised), n_eff)


def crps_samples(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples`` [..., S] at outcome ``y`` [...]; lower is better.

    Energy form ``E|X - y| - 0.5 E|X - X'|`` with X, X' independent draws from the S samples (all S^2
    pairs, so it equals the integral of (F_S(z) - 1{z >= y})^2 exactly). The pair term is computed in
    O(S log S) from the sorted samples: ``sum_ij |x_i - x_j| = 2 sum_k (2k - S - 1) x_(k)``.
    A point mass at x therefore scores ``|x - y|``.
    """
    x = np.sort(np.asarray(samples, np.float64), axis=-1)
    s = x.shape[-1]
    y = np.asarray(y, np.float64)[..., None]
    term_y = np.abs(x - y).mean(axis=-1)
    weights = 2.0 * np.arange(1, s + 1) - s - 1.0
    term_pairs = 2.0 * (x * weights).sum(axis=-1) / (s * s)
    return term_y - 0.5 * term_pairs


def central_interval(
    samples: np.ndarray, level: float = 0.8, axis: int = -2
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the central ``level`` interval of the samples along ``axis``.

    Quantiles ``(1 - level) / 2`` and ``(1 + level) / 2`` with numpy's linear interpolation, as
    :meth:`Forecast.quantile` computes them.
    """
    if not 0.0 < level < 1.0:
        raise ArgumentError(f"interval level must lie in (0, 1), got {level}")
    lo, hi = np.quantile(np.asarray(samples, np.float64), [(1 - level) / 2, (1 + level) / 2], axis=axis)
    return lo, hi


def coverage(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Share of windows (axis 0) whose outcome lies inside ``[lower, upper]``, bounds included."""
    return np.mean((lower <= y) & (y <= upper), axis=0)


def abs_step_returns(paths: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """Absolute one-step log returns ``|log(c_h / c_{h-1})|`` with ``c_0 = last_close``.

    ``paths`` is [N, H] or [N, S, H]; ``last_close`` is [N]. Output has the shape of ``paths``.
    """
    paths = np.maximum(np.asarray(paths, np.float64), 1e-12)  # a non-positive sampled price: huge, not NaN
    first = np.asarray(last_close, np.float64).reshape((-1,) + (1,) * (paths.ndim - 1))
    prev = np.concatenate([np.broadcast_to(first, paths.shape[:-1] + (1,)), paths[..., :-1]], axis=-1)
    return np.abs(np.log(paths / prev))


def qlike(forecast_var: np.ndarray, realised_sq: np.ndarray) -> np.ndarray:
    """QLIKE loss ``log v + r^2 / v`` averaged over windows (axis 0); lower is better.

    Ranks variance forecasts ``v`` correctly even against a noisy proxy (the squared return ``r^2``);
    it differs from the zero-at-perfect form ``r^2/v - log(r^2/v) - 1`` by a term that does not depend
    on the forecast, and stays finite when a realised return is exactly zero. ``v = 0`` gives ``inf``.
    """
    v = np.asarray(forecast_var, np.float64)
    r2 = np.asarray(realised_sq, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = np.where(v > 0, np.log(np.where(v > 0, v, 1.0)) + r2 / np.where(v > 0, v, 1.0), np.inf)
    return np.mean(loss, axis=0)


def score_paths(
    paths: np.ndarray,
    realised: np.ndarray,
    last_close: np.ndarray,
    *,
    level: float = 0.8,
    stride: int = 1,
) -> dict[str, np.ndarray]:
    """Every metric per horizon for one forecaster, from its close sample paths.

    Parameters
    ----------
    paths : np.ndarray
        [N, S, H] sampled closes per window (a point forecast is S identical paths).
    realised : np.ndarray
        [N, H] realised closes.
    last_close : np.ndarray
        [N] close of the last history bar of each window (the return base).
    level : float
        Central interval probability for ``coverage`` and ``width`` (default 0.8).
    stride : int
        Bars between consecutive origins; the IC t-statistics at horizon h count
        ``N * min(1, stride / h)`` independent windows because longer returns overlap.

    Returns
    -------
    dict[str, np.ndarray]
        Keys :data:`METRIC_NAMES`, each float64 [H]. Price errors (``mae``, ``rmse``) are in price
        units; ``crps`` and ``width`` are in return units (divided by ``last_close``); volatility metrics
        compare the forecast mean absolute one-step log return with the realised one.
    """
    paths = np.asarray(paths, np.float64)
    realised = np.asarray(realised, np.float64)
    base = np.asarray(last_close, np.float64)
    n, _, h = paths.shape
    if realised.shape != (n, h) or base.shape != (n,):
        raise ArgumentError(
            f"shapes disagree: paths {paths.shape}, realised {realised.shape}, last {base.shape}"
        )
    rel = paths / base[:, None, None]
    rel_real = realised / base[:, None]
    pred_ret = rel.mean(axis=1) - 1.0
    real_ret = rel_real - 1.0
    steps = np.arange(1, h + 1)
    n_eff = n * np.minimum(1.0, stride / steps)
    ic, rank_ic = pearson(pred_ret, real_ret), pearson(rankdata(pred_ret), rankdata(real_ret))
    lo, hi = central_interval(rel, level, axis=1)
    step_abs = abs_step_returns(paths, base)
    real_abs = abs_step_returns(realised, base)
    vol_hat = step_abs.mean(axis=1)
    return {
        "mae": mae(paths.mean(axis=1), realised),
        "rmse": rmse(paths.mean(axis=1), realised),
        "hit_rate": hit_rate(pred_ret, real_ret),
        "ic": ic,
        "ic_t": np.array([t_statistic(r, k) for r, k in zip(ic, n_eff)]),
        "rank_ic": rank_ic,
        "rank_ic_t": np.array([t_statistic(r, k) for r, k in zip(rank_ic, n_eff)]),
        "crps": crps_samples(np.moveaxis(rel, 1, -1), rel_real).mean(axis=0),
        "coverage": coverage(lo, hi, rel_real),
        "width": np.mean(hi - lo, axis=0),
        "vol_mae": mae(vol_hat, real_abs),
        "vol_qlike": qlike((step_abs**2).mean(axis=1), real_abs**2),
        "vol_ic": pearson(vol_hat, real_abs),
    }
