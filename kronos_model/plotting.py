"""Report figures through matplotlib's object API: no backend is selected and no pyplot state is kept, so
importing or running kronos-bt never changes a user's matplotlib setup (and works on machines with no screen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["new_figure", "save_figure"]


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], dpi: float | None = None,
               **subplots: Any) -> tuple[Any, Any]:  # fmt: skip
    """A standalone ``Figure`` and its axes (``Figure.subplots`` arguments), like ``plt.subplots`` without pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    return fig, fig.subplots(nrows, ncols, **subplots)


def save_figure(fig: Any, output: str | Path, dpi: float | None = None) -> Path:
    """Lay out and write a figure as an image (creating the folder); the one place reports save PNGs."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(output, dpi=dpi)
    return output
