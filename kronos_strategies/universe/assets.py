"""Load every asset of a ``universe:`` block into validated OHLCV frames, reusing the single-asset loaders."""

from __future__ import annotations

import dataclasses
import glob
import hashlib
from pathlib import Path

import pandas as pd

from kronos_model.errors import KronosError

from ..config import BacktestConfig
from ..errors import ConfigError
from ..feeds import data_fingerprint, read_ohlcv
from .config import UniverseConfig, asset_label

__all__ = ["load_universe", "universe_fingerprint", "validated"]

_SUFFIXES = (".csv", ".parquet", ".pq", ".gz", ".txt")


def load_universe(cfg: BacktestConfig) -> dict[str, pd.DataFrame]:
    """Each asset's bars by name (``read_ohlcv`` frames), in the order of the config or of the file names."""
    uni: UniverseConfig = cfg.universe
    if uni.assets:
        return {asset_label(a, i): _load_asset(cfg, a, asset_label(a, i)) for i, a in enumerate(uni.assets)}
    paths = _listed_files(cfg, uni)
    frames = {}
    for path in paths:
        name = path.name.split(".")[0]
        if name in frames:
            raise ConfigError(f"universe: two files are named {name!r} ({path}); rename one")
        frames[name] = _named(name, lambda p=path, n=name: read_ohlcv(p, timestamp_column=uni.timestamp_column, tz=uni.tz, name=n))  # fmt: skip
    return frames


def universe_fingerprint(frames: dict[str, pd.DataFrame]) -> str:
    """One hash of every asset's name and bars: the universe's data identity (run folders, sweep run ids)."""
    digest = hashlib.sha256()
    for name in sorted(frames):
        digest.update(f"{name}={data_fingerprint(frames[name])};".encode())
    return digest.hexdigest()[:16]


def validated(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Frames given in Python (tests, notebooks) through ``read_ohlcv``, errors naming the asset."""
    return {str(n): _named(str(n), lambda f=f, n=n: read_ohlcv(f, name=str(n))) for n, f in frames.items()}


def _listed_files(cfg: BacktestConfig, uni: UniverseConfig) -> list[Path]:
    """The files of ``universe.files`` (a glob) or ``universe.data_dir`` (a folder), sorted by name."""
    if uni.data_dir is not None:
        folder = _beside(cfg, uni.data_dir)
        if not folder.is_dir():
            raise ConfigError(
                f"universe data_dir {uni.data_dir!r} is not a folder; pass --data-dir DIR with CSV files"
            )
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)
        where = f"folder {str(folder)!r}"
    else:
        pattern = str(_beside(cfg, uni.files)) if not Path(uni.files).is_absolute() else uni.files
        paths = sorted(Path(p) for p in glob.glob(pattern) if Path(p).suffix.lower() in _SUFFIXES)
        where = f"glob {uni.files!r}"
    if len(paths) < 2:
        raise ConfigError(
            f"universe {where} has {len(paths)} CSV/Parquet file(s); a universe needs at least 2"
        )
    return paths


def _beside(cfg: BacktestConfig, path: str) -> Path:
    """A relative path from the working directory, or else from the YAML file's folder."""
    p = Path(path)
    if not p.is_absolute() and not p.exists() and cfg.source:
        beside = Path(cfg.source).parent / p
        if beside.exists() or glob.glob(str(beside)):
            return beside
    return p


def _load_asset(cfg: BacktestConfig, asset: object, name: str) -> pd.DataFrame:
    """One asset through the single-asset loader (``runner.load_bars``: file, data set or cached ccxt)."""
    from ..runner import load_bars

    one = dataclasses.replace(cfg, data=dataclasses.replace(asset, name=name))
    one.source = cfg.source
    return _named(name, lambda: load_bars(one))


def _named(name: str, load: object) -> pd.DataFrame:
    """Run ``load`` and re-raise any KronosError with the asset's name in front."""
    try:
        return load()  # type: ignore[operator]
    except KronosError as exc:
        message = str(exc)
        if message.startswith("universe asset"):
            raise
        raise type(exc)(f"universe asset {name!r}: {message}") from None
