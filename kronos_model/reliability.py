"""Calibration diagnostics of sample-path forecasts: PIT values and histograms, central-interval reliability.

A calibrated forecaster has uniform PIT values (the share of its samples below the outcome) and central
intervals whose observed coverage equals their nominal level; both are read per method in ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["RELIABILITY_LEVELS", "pit_histogram", "pit_values", "reliability"]

RELIABILITY_LEVELS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def pit_values(paths: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """Probability integral transform [N, H]: share of samples below the outcome, ties counting half.

    ``paths`` [N, S, H] sampled closes (or returns), ``realised`` [N, H] outcomes on the same scale.
    """
    paths = np.asarray(paths, np.float64)
    y = np.asarray(realised, np.float64)[:, None, :]
    below = (paths < y).mean(axis=1)
    equal = (paths == y).mean(axis=1)
    return below + 0.5 * equal


def pit_histogram(pit: np.ndarray, bins: int = 10) -> np.ndarray:
    """Share of PIT values per equal-width bin of [0, 1], [bins] (a calibrated forecaster: 1 / bins each)."""
    counts, _ = np.histogram(np.clip(np.ravel(pit), 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return counts / max(counts.sum(), 1)


def reliability(
    paths: np.ndarray, realised: np.ndarray, levels: Sequence[float] = RELIABILITY_LEVELS
) -> np.ndarray:
    """Observed coverage of the central interval at each nominal level, pooled over windows and steps [L]."""
    paths = np.asarray(paths, np.float64)
    y = np.asarray(realised, np.float64)
    out = []
    for level in levels:
        lo, hi = np.quantile(paths, [(1 - level) / 2, (1 + level) / 2], axis=1)
        out.append(float(((lo <= y) & (y <= hi)).mean()))
    return np.asarray(out)
