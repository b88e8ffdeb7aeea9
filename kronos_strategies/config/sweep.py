"""The ``sweep:`` block: which keys to vary and how, over which assets or universes, ranked by which metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["CROSS_SECTIONAL", "OBJECTIVES", "SweepConfig", "check_sweep"]

OBJECTIVES: tuple[str, ...] = (
    "sharpe", "sortino", "cagr", "total_return", "max_drawdown", "volatility", "hit_rate", "exposure", "turnover",
    "ic", "rank_ic", "ic_icir", "rank_ic_icir",
)  # fmt: skip
CROSS_SECTIONAL = ("ic", "rank_ic", "ic_icir", "rank_ic_icir")  # objectives only a universe has


@dataclass
class SweepConfig:
    """The ``sweep:`` block: which keys to vary and how, over which assets, ranked by which metric."""

    method: str = "grid"  # grid: every combination; random: ``samples`` draws
    params: dict[str, Any] = field(
        default_factory=dict
    )  # dotted key -> list of values (random: or {low, high, log})
    samples: int = 20  # random search: parameter sets drawn (duplicates dropped)
    seed: int = 0  # random search: the draws' seed
    assets: tuple[Any, ...] = ()  # data sources: mappings like `data:`, a file path or a data set name
    universes: tuple[
        Any, ...
    ] = ()  # with universe:, the universes: folders, globs or mappings of universe: keys
    objective: str = "sharpe"
    direction: str = "max"  # max or min
    top_n: int = 3  # full tear-sheets for the best N runs
    out: str = "sweeps/{name}"
    workers: int | None = None  # local cluster size (default: one per CPU core, at most 8)
    threads_per_worker: int = 1
    scheduler: str | None = None  # tcp://HOST:PORT of an existing dask scheduler


def check_sweep(section: SweepConfig, *, universe: bool) -> None:
    """Rules of the ``sweep:`` block itself (``universe``: the config has a ``universe:`` block).

    Whether every swept value and source makes a runnable backtest is checked by
    :func:`kronos_strategies.sweep.plan.check_sweep_runs` (it needs the strategy classes).
    """
    if section.method not in ("grid", "random"):
        raise ConfigError(f"'sweep.method' must be 'grid' or 'random', got {section.method!r}")
    if section.objective not in OBJECTIVES:
        raise ConfigError(
            f"'sweep.objective' must be one of {', '.join(OBJECTIVES)}, got {section.objective!r}"
        )
    if section.direction not in ("max", "min"):
        raise ConfigError(f"'sweep.direction' must be 'max' or 'min', got {section.direction!r}")
    for name, low in (("samples", 1), ("top_n", 0), ("threads_per_worker", 1)):
        if getattr(section, name) < low:
            raise ConfigError(f"'sweep.{name}' must be >= {low}, got {getattr(section, name)}")
    if section.workers is not None and section.workers < 1:
        raise ConfigError(f"'sweep.workers' must be >= 1, got {section.workers}")
    if section.objective in CROSS_SECTIONAL and not universe:
        raise ConfigError(
            f"'sweep.objective: {section.objective}' is a cross-sectional metric: it needs a universe: block"
        )
    if universe and section.assets:
        raise ConfigError(
            "a universe sweep lists 'sweep.universes' (folders, globs or mappings), not 'sweep.assets'"
        )
    if section.universes and not universe:
        raise ConfigError("'sweep.universes' needs a universe: block in the config (or list 'sweep.assets')")
