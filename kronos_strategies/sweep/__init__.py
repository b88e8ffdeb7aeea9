"""Parameter sweeps on dask.distributed: ``plan`` expands a YAML into runs, ``tasks`` run on the workers,
``run`` drives the cluster, ``report`` writes the table, heatmap and best tear-sheets.

Names load on first use so that reading a sweep config never imports dask.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
