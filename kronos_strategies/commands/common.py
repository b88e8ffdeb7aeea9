"""Pieces several commands share: summary-table cells and the engine options as config overrides."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["engine_overrides", "num", "pct"]


def pct(x: Any) -> str:
    """A fraction as a percentage cell; n/a for a metric that does not exist."""
    return "n/a" if x is None else f"{100 * x:.2f}%"


def num(x: Any, digits: int = 2) -> str:
    """A number cell; n/a for a metric that does not exist."""
    return "n/a" if x is None else f"{x:.{digits}f}"


def engine_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--mode``, ``--no-progress`` and ``--threads`` options as ``engine.*`` overrides."""
    out = []
    if args.mode:
        out.append(f"engine.mode={args.mode}")
    if args.no_progress:
        out.append("engine.progress=false")
    if args.threads:
        out.append(f"engine.threads={args.threads}")
    return out
