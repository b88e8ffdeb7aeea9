"""Walk-forward fine-tuning: refit Kronos fold by fold and serve every traded bar with its own fold's model.

``config`` holds the ``finetune:`` block and the indicator's :class:`SignalSpec`, ``folds`` the schedule,
``store`` the content-addressed fold checkpoints, ``routing`` the :class:`WalkForwardPredictor` that serves
each window with its fold's model, ``engine`` the precompute (train or load, then forecast, fold by fold),
``universe`` the same for a universe (one model per fold, trained on every asset's bars before it)
and ``report`` the per-fold skill report. Names load on first use so reading a config stays light.
"""

from __future__ import annotations

from ..lazy import lazy_getattr

_MODULES: dict[str, tuple[str, ...]] = {  # module -> the public names it defines
    ".config": ("DEFAULT_CACHE", "SignalSpec", "WalkForwardConfig"),
    ".folds": ("Fold", "make_schedule"),
    ".store": ("FOLD_FILE", "WALKFORWARD_VERSION", "fold_key", "load_fold"),
    ".routing": ("WalkForwardPredictor",),
    ".engine": ("FoldOutcome", "WalkForwardResult", "prepare_backtest", "run_walkforward", "walkforward_for"),
    ".universe": ("UniverseFold", "run_universe_walkforward"),
    ".report": ("fold_table", "skill", "write_walkforward_report"),
}
_EXPORTS: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
