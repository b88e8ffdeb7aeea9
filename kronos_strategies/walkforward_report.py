"""Deprecated: the walk-forward report moved to :mod:`kronos_strategies.walkforward.report` (kept for one release)."""

from __future__ import annotations

import warnings

from .walkforward.report import fold_table, skill, write_walkforward_report

__all__ = ["fold_table", "skill", "write_walkforward_report"]

warnings.warn(
    "kronos_strategies.walkforward_report is deprecated; import from kronos_strategies.walkforward instead",
    DeprecationWarning,
    stacklevel=2,
)
