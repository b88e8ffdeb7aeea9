"""Walk-forward fine-tuning: refit Kronos fold by fold and serve every traded bar with its own fold's model.

``config`` holds the ``finetune:`` block and the indicator's :class:`SignalSpec`, ``folds`` the schedule,
``store`` the content-addressed fold checkpoints, ``routing`` the :class:`WalkForwardPredictor` that serves
each window with its fold's model, ``engine`` the precompute (train or load, then forecast, fold by fold),
``universe`` the same for a universe (one model per fold, trained on every asset's bars before it)
and ``report`` the per-fold skill report. Names load on first use so reading a config stays light.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

_EXPORTS: dict[str, str] = {
    "DEFAULT_CACHE": ".config",
    "SignalSpec": ".config",
    "WalkForwardConfig": ".config",
    "Fold": ".folds",
    "make_schedule": ".folds",
    "FOLD_FILE": ".store",
    "WALKFORWARD_VERSION": ".store",
    "fold_key": ".store",
    "load_fold": ".store",
    "WalkForwardPredictor": ".routing",
    "FoldOutcome": ".engine",
    "WalkForwardResult": ".engine",
    "prepare_backtest": ".engine",
    "run_walkforward": ".engine",
    "walkforward_for": ".engine",
    "UniverseFold": ".universe",
    "run_universe_walkforward": ".universe",
    "fold_table": ".report",
    "skill": ".report",
    "write_walkforward_report": ".report",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
