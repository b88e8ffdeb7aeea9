"""A chunk of windows as model inputs: left-padded arrays, and each window's own seeded random draws."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .data import FEATURE_COLUMNS
from .series import ForecastWindow


def pad_windows(
    windows: Sequence[ForecastWindow], pred_len: int
) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """(x [B, W, 6], stamps [B, W + pred_len, 5], lengths [B]): windows left-padded to the longest, W."""
    width = max(len(w.x) for w in windows)
    x = np.zeros((len(windows), width, len(FEATURE_COLUMNS)), np.float32)
    stamps = np.zeros((len(windows), width + pred_len, 5), np.float32)
    for i, w in enumerate(windows):
        x[i, width - len(w.x) :] = w.x
        stamps[i, width - len(w.x) :] = w.stamps
    return x, stamps, torch.tensor([len(w.x) for w in windows])


def seeded_draws(seed: int | Sequence[int], windows: int, sample_count: int, pred_len: int) -> torch.Tensor:
    """Uniforms [windows * sample_count, pred_len, 2], float64: each window's rows from its own seed's stream.

    So a window's forecast depends only on its own data, arguments and seed, never on the batch it ran in;
    one int seeds every window alike (common random numbers).
    """
    seeds = [seed] * windows if isinstance(seed, int | np.integer) else list(seed)
    per_window = [
        torch.rand(
            sample_count, pred_len, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(int(s))
        )
        for s in seeds
    ]
    return torch.cat(per_window)
