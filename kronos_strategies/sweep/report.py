"""Sweep outputs: the tidy table of every run, the objective heatmap, the summary JSON and text."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import reporting

__all__ = ["build_table", "importance", "plot_objective", "summary_text", "write_outputs"]


def _cell(value: Any) -> Any:
    """A parameter value as a table cell: scalars as they are, lists and mappings as JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, list | tuple | Mapping) else value


def build_table(runs_dir: Path, runs: Sequence[Any], section: Any) -> pd.DataFrame:
    """One row per finished run (params + strategy metrics), best first by the sweep's objective.

    Rows come from the per-run JSON files, so a table rebuilt after an interrupted sweep and a
    re-run is the same as one built in a single pass.
    """
    keys = list(section.params)
    rows = []
    for run in runs:
        path = Path(runs_dir) / f"{run.run_id}.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        row = {"asset": record["asset"], **{k: _cell(record["params"].get(k)) for k in keys}}
        row |= {name: np.nan if value is None else value for name, value in record["metrics"].items()}
        rows.append(row | {"run_id": record["run_id"]})
    table = pd.DataFrame(rows, columns=None if rows else ["asset", *keys, section.objective, "run_id"])
    if not len(table):
        return table.assign(rank=pd.Series(dtype=int))[["rank", *table.columns]]
    table = table.sort_values(
        [section.objective, "run_id"], ascending=[section.direction == "min", True], na_position="last"
    ).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def importance(table: pd.DataFrame, keys: Sequence[str], objective: str) -> list[tuple[str, float]]:
    """Swept keys ordered by how much the objective's mean moves across their values (variance of means)."""
    scores = []
    for key in keys:
        if key not in table or table[key].nunique(dropna=False) < 2:
            continue
        means = table.groupby(key, dropna=False)[objective].mean()
        spread = float(means.var(ddof=0)) if means.notna().any() else 0.0
        scores.append((key, 0.0 if math.isnan(spread) else spread))
    return sorted(scores, key=lambda item: -item[1])


def plot_objective(
    table: pd.DataFrame, keys: Sequence[str], objective: str, output: Path, title: str
) -> Path:
    """Heatmap of the mean objective over the two most influential keys (a line for one, bars for none)."""
    ranked = [key for key, _ in importance(table, keys, objective)]
    fig, ax = reporting.new_figure(figsize=(7.5, 5.5))
    if len(ranked) >= 2:
        grid = table.pivot_table(index=ranked[0], columns=ranked[1], values=objective, aggfunc="mean")
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdYlGn", aspect="auto", origin="lower")
        ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [str(r) for r in grid.index])
        ax.set_xlabel(ranked[1])
        ax.set_ylabel(ranked[0])
        for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
        fig.colorbar(image, ax=ax, label=f"mean {objective}")
    elif ranked:
        for asset, rows in table.groupby("asset"):
            means = rows.groupby(ranked[0])[objective].mean()
            ax.plot([str(v) for v in means.index], means.to_numpy(), marker="o", label=str(asset))
        ax.set_xlabel(ranked[0])
        ax.set_ylabel(objective)
        ax.legend()
    else:
        means = table.groupby("asset")[objective].mean()
        ax.bar([str(a) for a in means.index], means.to_numpy())
        ax.set_ylabel(objective)
    ax.set_title(title)
    return reporting.save_figure(fig, output, dpi=110)


def write_outputs(
    table: pd.DataFrame, out: Path, section: Any, summary: Mapping[str, Any]
) -> dict[str, Path]:
    """results.parquet, results.csv, heatmap.png and sweep.json under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "results.csv", "parquet": out / "results.parquet", "summary": out / "sweep.json"}
    table.to_csv(files["csv"], index=False)
    table.to_parquet(files["parquet"], index=False)
    if len(table):
        title = f"{section.objective} ({section.direction}imise), mean over assets and other parameters"
        files["heatmap"] = plot_objective(
            table, list(section.params), section.objective, out / "heatmap.png", title
        )
    best = table.head(1).to_dict("records")
    payload = dict(summary) | {
        "best": best[0] if best else None,
        "files": {k: str(v) for k, v in files.items()},
    }
    files["summary"].write_text(json.dumps(payload, indent=2, sort_keys=True, default=_plain))
    return files


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars and paths."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def summary_text(
    table: pd.DataFrame, summary: Mapping[str, Any], files: Mapping[str, Path], rows: int = 10
) -> str:
    """What the CLI prints: counts, forecast work, the best runs and where the files are."""
    lines = [
        f"sweep {summary['name']}: {summary['runs']} runs ({summary['executed']} run now, {summary['skipped']} "
        f"already done), objective {summary['objective']} ({summary['direction']}), {summary['seconds']:.1f} s",
        f"forecasts: {summary['forecasts_computed']} computed, {summary['forecasts_reused']} reused from the cache; "
        f"backtests computed {summary['backtest_forecasts_computed']} more; model loads per worker: "
        f"{sorted(summary['model_loads'].values())}",
    ]
    if not summary["executed"] and summary.get("cluster") is False and not summary["model_loads"]:
        lines.append("nothing to do: every run is recorded; no cluster started, no model loaded")
    if summary.get("folds_trained"):
        lines.append(f"walk-forward: {summary['folds_trained']} fold models trained before the backtests")
    for run_id, message in summary["errors"].items():
        lines.append(f"failed {run_id}: {message}")
    if len(table):
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            shown = [c for c in table.columns if c not in ("run_id", "periods_per_year", "orders_filled")]
            lines.append(table[shown].head(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    lines.append("wrote " + ", ".join(str(p) for p in files.values()))
    return "\n".join(lines)
