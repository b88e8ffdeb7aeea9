"""Sweeps over universe backtests: ``sweep.universes`` (which universes) and their forecast shards.

A config with a ``universe:`` block sweeps like a single-asset one, with a universe in place of an asset: each
entry of ``sweep.universes`` replaces the block's asset source (``data_dir``, ``files`` or ``assets``) and may
set any other ``universe:`` key; without the list the config's own universe is the only one. A universe's
forecasts are sharded by asset: each shard forecasts every window its assets trade, on the universe's
calendar, into the shared cache, and the backtests only read it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kronos_model.errors import KronosError

from ..config import BacktestConfig
from ..errors import ConfigError
from ..universe.assets import universe_fingerprint as universe_data_fingerprint

__all__ = ["SOURCE_KEYS", "UniverseShard", "universe_data_fingerprint", "universe_entry", "universe_label",
           "universe_raw", "universe_shards"]  # fmt: skip

SOURCE_KEYS = ("assets", "files", "data_dir")  # where a universe's assets come from (exactly one is set)


@dataclass
class UniverseShard:
    """Forecasts of some assets of one universe (``asset`` is the universe's label, as in run records)."""

    group: str
    asset: str
    config: BacktestConfig
    names: list[str]
    windows: int


def universe_entry(item: Any, i: int) -> dict[str, Any]:
    """One ``sweep.universes`` entry as ``universe:`` keys (a string is a folder of files or a glob)."""
    where = f"sweep.universes[{i}]"
    if isinstance(item, str):
        return {"data_dir": item} if not any(c in item for c in "*?[") else {"files": item}
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a folder, a glob or a mapping of universe: keys, got {item!r}")
    given = [k for k in SOURCE_KEYS if item.get(k)]
    if len(given) != 1:
        raise ConfigError(
            f"{where} must set exactly one of {', '.join(SOURCE_KEYS)} (the universe's assets), got {given or 'none'}"
        )
    return dict(item)


def universe_raw(base: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The config mapping with the universe's asset source replaced by ``entry`` (its ``name`` is a label only)."""
    out = dict(base)
    block = {k: v for k, v in dict(base["universe"]).items() if k not in SOURCE_KEYS}
    for key in SOURCE_KEYS:
        block[key] = [] if key == "assets" else None
    block |= {k: v for k, v in entry.items() if k != "name"}
    out["universe"] = block
    return out


def universe_label(entry: Mapping[str, Any], default: str) -> str:
    """How a universe is named in the results table: its ``name``, its folder's or glob's name, else ``default``."""
    if entry.get("name"):
        return str(entry["name"])
    if entry.get("data_dir"):
        return Path(str(entry["data_dir"]).rstrip("/\\")).name or default
    if entry.get("files"):
        return str(entry["files"]).replace("\\", "/").rstrip("/")
    return default


def universe_shards(
    group: str, label: str, cfg: BacktestConfig, frames: Mapping[str, pd.DataFrame], workers: int
) -> list[UniverseShard]:
    """The universe's assets split into about ``2 * workers`` shards of whole assets, with their window counts.

    With a ``finetune:`` block one shard holds every asset: it trains each fold's model once, on all of them.
    """
    from ..universe.calendar import align_universe

    ind = cfg.indicator
    try:
        aligned = align_universe(dict(frames), start=cfg.dates.start, end=cfg.dates.end, lookback=ind.lookback,
                                 min_history=cfg.universe.min_history)  # fmt: skip
    except KronosError:
        return []  # each run reports the problem itself
    first = int(aligned.index.searchsorted(aligned.start))
    counts = aligned.eligible.iloc[first:].sum(axis=0)
    names = [n for n in aligned.names if counts[n] > 0]
    size = len(names) if cfg.finetune is not None else max(1, math.ceil(len(names) / (2 * workers)))
    return [
        UniverseShard(group, label, cfg, part, int(sum(counts[n] for n in part)))
        for part in (names[i : i + size] for i in range(0, len(names), size))
    ]
