"""Simple probabilistic forecasters that Kronos must beat, each returning close sample paths [S, H].

Every baseline sees only the lookback closes of a window (strictly before the origin) and draws its
randomness from the generator it is given, so a window's paths depend only on its history and seed.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import numpy as np

from .errors import DataError, InsufficientHistoryError, SamplingError

__all__ = ["BASELINES", "Baseline", "bootstrap", "drift", "garch", "random_walk", "run_baseline"]

logger = logging.getLogger(__name__)

# (lookback closes [L], horizon H, sample_count S, generator) -> close paths float64 [S, H]
Baseline = Callable[[np.ndarray, int, int, np.random.Generator], np.ndarray]


def _log_returns(close: np.ndarray, minimum: int) -> np.ndarray:
    """One-step log returns of the lookback closes, checking there are at least ``minimum`` of them."""
    if len(close) - 1 < minimum:
        raise InsufficientHistoryError(
            f"baseline needs at least {minimum + 1} lookback closes, got {len(close)}; use a longer lookback"
        )
    return np.diff(np.log(close))


def _from_returns(last: float, steps: np.ndarray) -> np.ndarray:
    """Close paths from a start price and sampled one-step log returns [S, H]."""
    return last * np.exp(np.cumsum(steps, axis=1))


def random_walk(close: np.ndarray, horizon: int, sample_count: int, rng: np.random.Generator) -> np.ndarray:
    """Naive random walk: every path stays at the last close (a point mass; its CRPS is its MAE)."""
    return np.full((sample_count, horizon), float(close[-1]))


def drift(close: np.ndarray, horizon: int, sample_count: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random walk with drift: i.i.d. log returns with the lookback's mean and std."""
    rets = _log_returns(close, 2)
    steps = rng.normal(rets.mean(), rets.std(ddof=1), size=(sample_count, horizon))
    return _from_returns(float(close[-1]), steps)


def bootstrap(close: np.ndarray, horizon: int, sample_count: int, rng: np.random.Generator) -> np.ndarray:
    """Historical bootstrap: each step's log return drawn with replacement from the lookback's returns."""
    rets = _log_returns(close, 1)
    return _from_returns(float(close[-1]), rng.choice(rets, size=(sample_count, horizon), replace=True))


def garch(close: np.ndarray, horizon: int, sample_count: int, rng: np.random.Generator) -> np.ndarray:
    """GARCH(1,1) with constant mean and normal shocks, fitted on the lookback only, simulated forward."""
    from arch import arch_model  # heavy import, only when this baseline runs

    rets = _log_returns(close, 20)
    scale = 100.0  # arch's optimiser is best conditioned for returns in percent
    model = arch_model(rets * scale, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on short windows; the fit is still usable
        fitted = model.fit(disp="off", show_warning=False)
        sims = fitted.forecast(
            horizon=horizon,
            method="simulation",
            simulations=sample_count,
            rng=lambda size: rng.standard_normal(size),
            reindex=False,
        ).simulations.values[-1]
    if not np.isfinite(sims).all():
        raise SamplingError(
            "GARCH(1,1) simulation produced non-finite returns; the lookback may be degenerate"
        )
    return _from_returns(float(close[-1]), sims / scale)


BASELINES: dict[str, Baseline] = {
    "random_walk": random_walk,
    "drift": drift,
    "bootstrap": bootstrap,
    "garch": garch,
}


def run_baseline(
    name: str, close: np.ndarray, horizon: int, sample_count: int, seed: int | tuple[int, ...] = 0
) -> np.ndarray:
    """Close paths float64 [sample_count, horizon] of baseline ``name`` from lookback closes [L].

    ``seed`` (an int or a tuple such as ``(seed, origin_position)``) seeds a fresh generator, so the
    paths of one window never depend on which other windows are evaluated.
    """
    if name not in BASELINES:
        raise DataError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    if horizon < 1 or sample_count < 1:
        raise SamplingError(f"horizon and sample_count must be >= 1, got {horizon} and {sample_count}")
    close = np.asarray(close, np.float64)
    if close.ndim != 1 or len(close) == 0 or not np.isfinite(close).all() or (close <= 0).any():
        raise DataError("baseline input must be a non-empty 1-D array of finite, positive closes")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    return BASELINES[name](close, int(horizon), int(sample_count), rng)
