"""Content-addressed on-disk cache of forecasts, so re-running a backtest reuses the model's work.

A key hashes everything a seeded forecast depends on: the predictor fingerprint (config + weights),
the window's feature values and timestamps, the sampling arguments and the seed. Change any of them
and the key changes; nothing else (strategy parameters, broker settings) enters it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_model.forecast import Forecast

__all__ = ["CACHE_VERSION", "ForecastCache", "forecast_key"]

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the stored layout or the meaning of a key changes


def forecast_key(
    fingerprint: str,
    window: np.ndarray,
    stamps: pd.DatetimeIndex,
    sampling: Mapping[str, object],
    seed: int,
) -> str:
    """sha256 hex key of one seeded forecast.

    ``window`` is the float64 [lookback, n_features] array given to the model, ``stamps`` its
    timestamps, ``sampling`` the JSON-serialisable sampling arguments (pred_len, sample_count, T, ...).
    """
    digest = hashlib.sha256()
    head = {"v": CACHE_VERSION, "model": fingerprint, "seed": int(seed), "sampling": dict(sampling)}
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    values = np.ascontiguousarray(np.asarray(window, dtype="<f8"))
    digest.update(str(values.shape).encode())
    digest.update(values.tobytes())
    stamps = pd.DatetimeIndex(stamps)
    digest.update(np.asarray(stamps.as_unit("ns").asi8, dtype="<i8").tobytes())
    digest.update(str(stamps.tz).encode())
    return digest.hexdigest()


class ForecastCache:
    """Forecasts stored as ``<root>/<key[:2]>/<key>.npz`` (samples, timestamps, last close).

    Writes are atomic (temporary file + rename), so an interrupted run never leaves a torn entry
    and parallel runs sharing a directory are safe. ``hits`` / ``misses`` count look-ups.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"ForecastCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> Forecast | None:
        """The stored forecast, or None (a missing or unreadable entry is a miss)."""
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as npz:
                forecast = _from_arrays(npz)
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable forecast cache entry %s: %s", path, exc)
            self.misses += 1
            return None
        self.hits += 1
        return forecast

    def put(self, key: str, forecast: Forecast) -> None:
        """Store ``forecast`` under ``key`` atomically."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **_to_arrays(forecast))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.npz")) if self.root.is_dir() else 0


def _stamp_arrays(stamps: pd.DatetimeIndex | None, prefix: str) -> dict[str, np.ndarray]:
    """Timestamps as int64 nanoseconds plus their timezone name."""
    if stamps is None:
        return {}
    stamps = pd.DatetimeIndex(stamps)
    return {
        f"{prefix}_ns": np.asarray(stamps.as_unit("ns").asi8, dtype=np.int64),
        f"{prefix}_tz": np.asarray("" if stamps.tz is None else str(stamps.tz)),
    }


def _stamps_from(npz: Mapping[str, np.ndarray], prefix: str) -> pd.DatetimeIndex | None:
    if f"{prefix}_ns" not in npz:
        return None
    stamps = pd.DatetimeIndex(pd.to_datetime(npz[f"{prefix}_ns"], unit="ns"))
    tz = str(npz[f"{prefix}_tz"])
    return stamps.tz_localize("UTC").tz_convert(tz) if tz else stamps


def _to_arrays(forecast: Forecast) -> dict[str, np.ndarray]:
    end = None if forecast.history_end is None else pd.DatetimeIndex([forecast.history_end])
    return {
        "samples": np.asarray(forecast.samples, dtype=np.float32),
        "last_close": np.asarray(forecast.last_close, dtype=np.float64),
        **_stamp_arrays(forecast.timestamps, "timestamps"),
        **_stamp_arrays(end, "history_end"),
    }


def _from_arrays(npz: Mapping[str, np.ndarray]) -> Forecast:
    end = _stamps_from(npz, "history_end")
    return Forecast(
        samples=np.asarray(npz["samples"], dtype=np.float32),
        timestamps=_stamps_from(npz, "timestamps"),
        last_close=float(npz["last_close"]),
        history_end=None if end is None else end[0],
    )
