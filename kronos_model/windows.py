"""Moved to :mod:`kronos_model.training.windows`; kept so old imports keep working."""

from __future__ import annotations

from .training.windows import *  # noqa: F403
from .training.windows import __all__ as __all__  # noqa: F401
