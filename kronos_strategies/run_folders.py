"""Run folders: ``runs/<name>/<UTC time>-<8 hex of config + data>/`` per run, and a ``latest`` link to the newest.

Shared by single-asset and universe backtests; an explicit ``--out`` folder that already holds a run is refused
unless ``--force``, before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from .config import BacktestConfig
from .errors import ConfigError

__all__ = ["point_latest", "report_folder", "run_folder"]


def report_folder(base: Path, cfg: BacktestConfig, data_hash: str, *, new_folder: bool, force: bool) -> Path:
    """Where a run's reports go: a fresh run folder under ``base`` (``new_folder``), else ``base`` itself,
    refused when it already holds a run (``manifest.json``) unless ``force``. Checked before any work."""
    if new_folder:
        return run_folder(base, cfg, data_hash)
    if not force and (base / "manifest.json").exists():
        raise ConfigError(
            f"{base} already holds a run (manifest.json); pass --force to overwrite it or choose another --out"
        )
    return base


def run_folder(base: Path, cfg: BacktestConfig, data_hash: str) -> Path:
    """A new, unused ``<base>/<UTC YYYYmmdd-HHMMSS>-<8 hex of config + data>/`` path for one run's reports."""
    digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    digest.update(data_hash.encode())
    stem = f"{pd.Timestamp.now(tz='UTC'):%Y%m%d-%H%M%S}-{digest.hexdigest()[:8]}"
    path, n = base / stem, 1
    while path.exists():  # the same config twice within one second
        n += 1
        path = base / f"{stem}-{n}"
    return path


def point_latest(run_dir: Path) -> None:
    """Make ``<run_dir>/../latest`` a relative link to ``run_dir`` (replaced atomically)."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, link)
