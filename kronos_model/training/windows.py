"""Training windows for fine-tuning: series loading, the time-ordered train/validation split, batches.

Each window of ``lookback + horizon (+1)`` bars is normalised with the statistics of its own lookback rows
only, exactly as at inference, so no future bar ever enters the mean/std of the bars a model learns from.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import (
    calendar_features,
    check_time_order,
    frame_timestamps,
    normalize,
    prepare_ohlcv,
    window_stats,
)
from ..errors import InsufficientHistoryError
from .config import FinetuneConfig

__all__ = [
    "Series",
    "WindowSplit",
    "data_fingerprint",
    "date_ranges",
    "load_series",
    "make_batch",
    "normalize_window",
    "split_windows",
]


@dataclass(frozen=True)
class Series:
    """One validated OHLCV series: features [N, 6] float64, calendar stamps [N, 5], times, sha256."""

    name: str
    values: np.ndarray
    stamps: np.ndarray
    times: pd.DatetimeIndex
    sha256: str

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class WindowSplit:
    """Window starts as rows ``(series index, first bar)`` for training and validation, and the cut-off."""

    train: np.ndarray  # [n_train, 2] int64
    val: np.ndarray  # [n_val, 2] int64
    window: int
    cutoff: pd.Timestamp | None  # first validation time (UTC, tz-naive); None without validation


def _utc_ns(times: pd.DatetimeIndex) -> np.ndarray:
    """Times as int64 UTC nanoseconds, so series from different time zones and units share one cut-off."""
    naive = times.tz_convert(None) if times.tz is not None else times
    return naive.as_unit("ns").asi8


def load_series(frames: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame]) -> list[Series]:
    """Validate OHLCV frames (timestamps from a column or DatetimeIndex) into :class:`Series`."""
    if isinstance(frames, pd.DataFrame):
        named = [("frames[0]", frames)]
    elif isinstance(frames, Mapping):
        named = [(str(k), v) for k, v in frames.items()]
    else:
        named = [(f"frames[{i}]", f) for i, f in enumerate(frames)]
    if not named:
        raise InsufficientHistoryError("no OHLCV frames given: pass at least one DataFrame")
    out = []
    for name, df in named:
        values = prepare_ohlcv(df, name=name).to_numpy(dtype=np.float64)
        times = frame_timestamps(df)
        if len(times) != len(values):
            raise InsufficientHistoryError(f"{name}: {len(times)} timestamps for {len(values)} rows")
        check_time_order(times, name=f"{name} timestamps")
        digest = hashlib.sha256(np.ascontiguousarray(values).tobytes())
        digest.update(np.ascontiguousarray(_utc_ns(times)).tobytes())
        out.append(Series(name, values, calendar_features(times), times, digest.hexdigest()))
    return out


def data_fingerprint(series: Sequence[Series]) -> str:
    """sha256 over the names and per-series hashes (values + timestamps) of the training data."""
    digest = hashlib.sha256()
    for s in series:
        digest.update(f"{s.name}\0{s.sha256}\0".encode())
    return digest.hexdigest()


def _cutoff(series: Sequence[Series], cfg: FinetuneConfig) -> pd.Timestamp | None:
    """First validation time: ``cfg.val_start``, or the (1 - val_fraction) quantile of all bars' times."""
    if cfg.val_start is not None:
        ts = pd.Timestamp(cfg.val_start)
        return ts.tz_convert(None) if ts.tz is not None else ts
    if cfg.val_fraction == 0:
        return None
    pooled = np.sort(np.concatenate([_utc_ns(s.times) for s in series]))
    pos = min(len(pooled) - 1, int(math.floor(len(pooled) * (1.0 - cfg.val_fraction))))
    return pd.Timestamp(int(pooled[pos]))


def split_windows(series: Sequence[Series], window: int, cfg: FinetuneConfig) -> WindowSplit:
    """Cut windows of ``window`` bars; training windows end before the cut-off, validation ones start at it."""
    short = [f"{s.name} ({len(s)} bars)" for s in series if len(s) < window]
    if short:
        raise InsufficientHistoryError(
            f"series too short for a window of {window} bars (lookback {cfg.lookback} + horizon "
            f"{cfg.horizon} + targets): {', '.join(short)}; give longer series or a shorter lookback/horizon"
        )
    cutoff = _cutoff(series, cfg)
    train, val = [], []
    for i, s in enumerate(series):
        n_train = (
            len(s)
            if cutoff is None
            else int(np.searchsorted(_utc_ns(s.times), pd.Timestamp(cutoff).as_unit("ns").value))
        )
        train += [(i, t) for t in range(0, n_train - window + 1, cfg.stride)]
        val += [(i, t) for t in range(n_train, len(s) - window + 1, cfg.stride)]
    if not train:
        raise InsufficientHistoryError(
            f"no training window of {window} bars ends before the validation cut-off {cutoff}; "
            "lower val_fraction, move val_start later, or shorten lookback/horizon"
        )
    if cutoff is not None and not val:
        raise InsufficientHistoryError(
            f"no validation window of {window} bars fits after the cut-off {cutoff}; "
            "raise val_fraction, move val_start earlier, shorten lookback/horizon, or set val_fraction=0"
        )
    val_arr = np.asarray(val, dtype=np.int64).reshape(-1, 2)
    if cfg.max_val_windows is not None and len(val_arr) > cfg.max_val_windows:
        keep = np.unique(np.linspace(0, len(val_arr) - 1, cfg.max_val_windows).round().astype(np.int64))
        val_arr = val_arr[keep]
    return WindowSplit(np.asarray(train, dtype=np.int64).reshape(-1, 2), val_arr, window, cutoff)


def normalize_window(window: np.ndarray, lookback: int, clip: float) -> np.ndarray:
    """Normalise a [L, 6] window with the mean/std of its first ``lookback`` rows only (float32)."""
    mean, std = window_stats(window[:lookback])
    return normalize(window, mean, std, clip)


def make_batch(
    series: Sequence[Series], rows: np.ndarray, window: int, cfg: FinetuneConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised features [B, L, 6] and calendar stamps [B, L, 5] for window rows ``(series, start)``."""
    xs, st = [], []
    for i, start in rows:
        s = series[int(i)]
        xs.append(normalize_window(s.values[start : start + window], cfg.lookback, cfg.clip))
        st.append(s.stamps[start : start + window])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(st))


def date_ranges(series: Sequence[Series], split: WindowSplit) -> list[dict[str, Any]]:
    """Per-series record of the bars and time ranges used for training and validation."""
    out = []
    for i, s in enumerate(series):
        info: dict[str, Any] = {"name": s.name, "bars": len(s), "sha256": s.sha256}
        for part, rows in (("train", split.train), ("val", split.val)):
            starts = rows[rows[:, 0] == i, 1]
            info[f"{part}_windows"] = len(starts)
            if len(starts):
                info[f"{part}_first_bar"] = str(s.times[starts.min()])
                info[f"{part}_last_bar"] = str(s.times[starts.max() + split.window - 1])
        out.append(info)
    return out
