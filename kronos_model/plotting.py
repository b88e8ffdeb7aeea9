"""Report figures through matplotlib's object API: no backend is selected and no pyplot state is kept, so
importing or running kronos-bt never changes a user's matplotlib setup (and works on machines with no screen)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["new_figure", "plot_calibration", "save_figure"]


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


def plot_calibration(
    pit: Mapping[str, Sequence[float]],
    reliability: Mapping[str, Sequence[float]],
    levels: Sequence[float],
    coverage: Mapping[str, Sequence[float]],
    *,
    target: float,
    output: str | Path,
    title: str = "",
) -> Path:
    """Three panels per method: PIT histogram, reliability (observed vs nominal coverage), coverage by horizon."""
    fig, (ax_pit, ax_rel, ax_cov) = new_figure(1, 3, figsize=(13.5, 4.0))
    for i, (name, shares) in enumerate(pit.items()):
        bins = len(shares)
        edges = [b / bins for b in range(bins + 1)]
        ax_pit.stairs(list(shares), edges, lw=1.6, color=f"C{i}", label=name)
    if pit:
        ax_pit.axhline(1.0 / len(next(iter(pit.values()))), color="grey", ls=":", label="uniform")
    ax_pit.set(title="PIT histogram (all horizons)", xlabel="PIT", ylabel="share of outcomes")
    ax_rel.plot([0, 1], [0, 1], color="grey", ls=":", label="ideal")
    for i, (name, observed) in enumerate(reliability.items()):
        ax_rel.plot(list(levels), list(observed), marker="o", ms=3, color=f"C{i}", label=name)
    ax_rel.set(
        title="Reliability of central intervals", xlabel="nominal coverage", ylabel="observed coverage"
    )
    for i, (name, values) in enumerate(coverage.items()):
        ax_cov.plot(range(1, len(values) + 1), list(values), marker="o", ms=3, color=f"C{i}", label=name)
    ax_cov.axhline(target, color="grey", ls=":", label=f"target {target:g}")
    ax_cov.set(title=f"{target:.0%} band coverage by horizon", xlabel="horizon", ylabel="coverage")
    for ax in (ax_pit, ax_rel, ax_cov):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, output, dpi=110)
