"""The whole signal table of a vectorised universe run, cached as one file next to the forecast cache.

A re-run that changes only trading parameters (``k``, ``n_drop``, the broker) needs the same table, and
reading it back from one ``.npz`` costs milliseconds where looking up every window's forecast costs seconds
(one file per window). The key hashes everything the table depends on: the model fingerprint, the forecast
spec, the lookback, horizon and signal kind, each asset's bars, the union calendar and which cells are
forecast. Each window's forecast is still in the per-window cache, so a changed key only costs look-ups.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..feeds import data_fingerprint

__all__ = ["TABLE_VERSION", "load_table", "store_table", "table_key"]

log = logging.getLogger(__name__)

TABLE_VERSION = 1  # bump when the stored arrays or the meaning of the key change
_ARRAYS = ("signal", "prob_up", "expected")


def table_key(fc: Any, eligible: np.ndarray) -> str | None:
    """sha256 of what the table of ``fc`` (a ``UniverseForecaster``) holds.

    None when it is not cached: unseeded, a predictor without a fingerprint, or calibrated signals.
    """
    fingerprint = getattr(fc.predictor, "fingerprint", None)
    if fc.cache is None or fingerprint is None or getattr(fc, "calibration", None) is not None:
        return None  # calibrated signals carry per-asset state: they are rebuilt from the per-window cache
    digest = hashlib.sha256()
    head = {"v": TABLE_VERSION, "model": str(fingerprint), "spec": repr(fc.spec), "lookback": fc.lookback,
            "horizon": fc.horizon, "signal": fc.kind, "names": list(fc.universe.names)}  # fmt: skip
    if getattr(fc, "calibration", None) is not None:  # calibrated summaries (raw-only keys stay as they were)
        head["calibration"] = fc.calibration.to_dict()
    digest.update(json.dumps(head, sort_keys=True).encode())
    for name in fc.universe.names:
        digest.update(data_fingerprint(fc.universe.frames[name]).encode())
    digest.update(np.asarray(fc.universe.index.asi8, dtype="<i8").tobytes())
    digest.update(str(fc.universe.index.tz).encode())
    digest.update(np.ascontiguousarray(eligible, dtype=bool).tobytes())
    return digest.hexdigest()


def _path(fc: Any, key: str) -> Path:
    return Path(fc.cache.root) / "tables" / key[:2] / f"{key}.npz"  # type: ignore[union-attr]


def load_table(fc: Any, key: str, table: Any) -> bool:
    """Fill ``table`` from the stored copy under ``key``; False when there is none (or it is unreadable)."""
    path = _path(fc, key)
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in _ARRAYS}
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, EOFError) as exc:
        log.warning("ignoring unreadable universe table %s: %s", path, exc)
        return False
    if any(arrays[name].shape != getattr(table, name).shape for name in _ARRAYS):
        return False
    for name in _ARRAYS:
        getattr(table, name)[...] = arrays[name]
    return True


def store_table(fc: Any, key: str, table: Any) -> None:
    """Write ``table``'s arrays under ``key`` atomically (temporary file + rename)."""
    path = _path(fc, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **{name: getattr(table, name) for name in _ARRAYS})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
