"""Parameter sweeps on dask.distributed: ``plan`` expands a YAML into runs, ``tasks`` run on the workers,
``run`` drives the cluster, ``report`` writes the table, heatmap and best tear-sheets.

Names load on first use so that reading a sweep config never imports dask.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "run_sweep": ".run",
    "SweepResult": ".run",
    "OBJECTIVES": ".plan",
    "RunSpec": ".plan",
    "Shard": ".plan",
    "SweepConfig": ".plan",
    "SweepPlan": ".plan",
    "WalkForwardJob": ".plan",
    "param_sets": ".plan",
    "plan_sweep": ".plan",
    "model_loads": ".tasks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562)."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'kronos_strategies.sweep' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value
