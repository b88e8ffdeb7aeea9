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

CACHE_VERSION = 2  # bump when the stored layout or the meaning of a key changes


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
    """Forecasts stored as ``<root>/<key[:2]>/<key>.npy``: one record of samples, timestamps, last close.

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
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> Forecast | None:
        """The stored forecast, or None (a missing or unreadable entry is a miss)."""
        path = self.path(key)
        try:
            forecast = _from_record(np.load(path, allow_pickle=False))
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, KeyError, EOFError) as exc:
            log.warning("ignoring unreadable forecast cache entry %s: %s", path, exc)
            self.misses += 1
            return None
        self.hits += 1
        return forecast

    def put(self, key: str, forecast: Forecast) -> None:
        """Store ``forecast`` under ``key`` atomically."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, _to_record(forecast), allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.npy")) if self.root.is_dir() else 0


_NAT = np.iinfo(np.int64).min  # no history_end


def _to_record(forecast: Forecast) -> np.ndarray:
    """One structured record: samples, the future timestamps plus history_end (UTC ns), last close, timezone."""
    samples = np.asarray(forecast.samples, dtype=np.float32)
    stamps = pd.DatetimeIndex(forecast.timestamps)
    end = (
        _NAT
        if forecast.history_end is None
        else pd.DatetimeIndex([forecast.history_end]).as_unit("ns").asi8[0]
    )
    dtype = np.dtype([("samples", "<f4", samples.shape), ("stamps", "<i8", (len(stamps) + 1,)),
                      ("last_close", "<f8"), ("tz", "U64")])  # fmt: skip
    record = np.zeros((), dtype=dtype)
    record["samples"] = samples
    record["stamps"] = np.append(stamps.as_unit("ns").asi8, end)
    record["last_close"] = forecast.last_close
    record["tz"] = "" if stamps.tz is None else str(stamps.tz)
    return record


def _from_record(record: np.ndarray) -> Forecast:
    ns = np.asarray(record["stamps"], dtype=np.int64)
    stamps = pd.DatetimeIndex(ns.view("datetime64[ns]"))
    tz = str(record["tz"])
    if tz:
        stamps = stamps.tz_localize("UTC").tz_convert(tz)
    return Forecast(
        samples=np.array(record["samples"], dtype=np.float32),
        timestamps=stamps[:-1],
        last_close=float(record["last_close"]),
        history_end=None if ns[-1] == _NAT else stamps[-1],
    )
