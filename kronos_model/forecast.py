"""Probabilistic forecast result: sample paths of future bars with quantiles and direction probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import FEATURE_COLUMNS
from .errors import ArgumentError, UnknownNameError


@dataclass(frozen=True)
class Forecast:
    """Sample paths for one window.

    Attributes
    ----------
    samples : np.ndarray
        float32 [sample_count, pred_len, 6], de-normalised, columns ``open, high, low, close, volume, amount``.
    timestamps : pd.DatetimeIndex
        The ``pred_len`` future timestamps the paths cover.
    last_close : float
        Close of the last history bar; returns are measured from it.
    history_end : pd.Timestamp
        Timestamp of the last history bar (the forecast uses bars up to and including it, nothing after).
    """

    samples: np.ndarray
    timestamps: pd.DatetimeIndex
    last_close: float
    history_end: pd.Timestamp | None = None

    columns: tuple[str, ...] = FEATURE_COLUMNS

    @property
    def sample_count(self) -> int:
        return int(self.samples.shape[0])

    @property
    def pred_len(self) -> int:
        return int(self.samples.shape[1])

    @property
    def mean(self) -> np.ndarray:
        """Mean path, float32 [pred_len, 6] (what the reference ``predict`` returns)."""
        return self.samples.mean(axis=0, dtype=np.float32)

    def _col(self, column: str) -> int:
        try:
            return self.columns.index(column)
        except ValueError:
            raise UnknownNameError(f"unknown column {column!r}; choose one of {self.columns}") from None

    def _step(self, horizon: int | None) -> int:
        h = self.pred_len if horizon is None else int(horizon)
        if not 1 <= h <= self.pred_len:
            raise ArgumentError(f"horizon must be in [1, {self.pred_len}], got {horizon}")
        return h - 1

    def paths(self, column: str = "close") -> np.ndarray:
        """Sample paths of one column, [sample_count, pred_len]."""
        return self.samples[:, :, self._col(column)]

    def quantile(self, q: float | Sequence[float], column: str = "close") -> np.ndarray:
        """Quantile(s) over the samples per step: [pred_len] for a scalar q, [len(q), pred_len] otherwise."""
        qs = np.asarray(q, dtype=np.float64)
        if ((qs < 0) | (qs > 1)).any():
            raise ArgumentError(f"quantile levels must lie in [0, 1], got {q}")
        return np.quantile(self.paths(column), qs, axis=0).astype(np.float32)

    def cumulative_returns(self) -> np.ndarray:
        """Simple return of each sample's close at every step versus ``last_close``, [sample_count, pred_len]."""
        return self.paths("close") / np.float32(self.last_close) - 1.0

    def expected_return(self, horizon: int | None = None) -> float:
        """Mean over samples of the close-to-close return from the last bar to step ``horizon`` (default: last)."""
        return float(self.cumulative_returns()[:, self._step(horizon)].mean())

    def prob_up(self, horizon: int | None = None) -> float:
        """Fraction of sample paths whose close at step ``horizon`` is above ``last_close``."""
        return float((self.cumulative_returns()[:, self._step(horizon)] > 0).mean())

    def step_prob_up(self) -> np.ndarray:
        """Per step, the fraction of paths whose close rises from the previous step, [pred_len]."""
        close = self.paths("close")
        prev = np.concatenate([np.full((close.shape[0], 1), self.last_close, np.float32), close[:, :-1]], 1)
        return (close > prev).mean(axis=0)

    def return_quantile(self, q: float | Sequence[float], horizon: int | None = None) -> np.ndarray | float:
        """Quantile(s) of the cumulative return at step ``horizon`` over the samples."""
        out = np.quantile(self.cumulative_returns()[:, self._step(horizon)], q)
        return float(out) if np.ndim(out) == 0 else out

    def to_frame(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> pd.DataFrame:
        """Mean path (six columns) plus ``close_q<level>`` columns and ``prob_up``, indexed by timestamp."""
        frame = pd.DataFrame(self.mean, index=self.timestamps, columns=list(self.columns))
        if quantiles:
            for level, row in zip(quantiles, self.quantile(list(quantiles)), strict=True):
                frame[f"close_q{level:g}"] = row
        frame["prob_up"] = (self.cumulative_returns() > 0).mean(axis=0)
        return frame
