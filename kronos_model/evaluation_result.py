"""The scores of one rolling-origin evaluation: tables per horizon, target checks, reports and figures.

:func:`kronos_model.evaluation.evaluate` builds an :class:`EvaluationResult`; this module turns it into
``report.md`` / ``report.json``, the fan, metric and calibration figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import UnknownNameError
from .plotting import new_figure, plot_calibration, save_figure
from .reliability import RELIABILITY_LEVELS, pit_histogram, pit_values, reliability

__all__ = ["CALIBRATED", "KRONOS", "EvaluationResult"]

KRONOS = "kronos"
CALIBRATED = "kronos_calibrated"  # Kronos with its bands calibrated online (kronos_model.calibration)
LOWER_IS_BETTER = frozenset({"mae", "rmse", "crps", "vol_mae", "vol_qlike"})
HIGHER_IS_BETTER = frozenset({"hit_rate", "ic", "rank_ic", "vol_ic"})
PLOT_METRICS: tuple[str, ...] = ("crps", "mae", "hit_rate", "rank_ic", "coverage", "vol_mae")


@dataclass
class EvaluationResult:
    """Per-horizon scores of every method on the same windows, with the paths to plot them.

    Attributes
    ----------
    scores : pd.DataFrame
        Rows MultiIndex ``(method, horizon)`` (horizon 1..H), columns :data:`METRIC_NAMES`.
    paths : dict[str, np.ndarray]
        Method -> float64 [N, S, H] close sample paths (Kronos samples are float32 values).
    realised : np.ndarray
        float64 [N, H] realised closes; ``last_close`` float64 [N] closes at ``origin - 1``.
    close : pd.Series
        The series' closes, for plotting history around an origin.
    """

    name: str
    settings: dict[str, Any]
    origins: pd.DatetimeIndex
    positions: np.ndarray
    scores: pd.DataFrame
    paths: dict[str, np.ndarray] = field(repr=False)
    realised: np.ndarray = field(repr=False)
    last_close: np.ndarray = field(repr=False)
    close: pd.Series = field(repr=False)
    calibration: dict[str, Any] | None = (
        None  # the spec and the band scales issued, when Kronos was calibrated
    )

    @property
    def methods(self) -> list[str]:
        return list(self.paths)

    @property
    def horizon(self) -> int:
        return int(self.realised.shape[1])

    def metric(self, name: str) -> pd.DataFrame:
        """One metric as a table [horizon x method]."""
        if name not in self.scores.columns:
            raise UnknownNameError(f"unknown metric {name!r}; choose from {list(self.scores.columns)}")
        return self.scores[name].unstack(0)[self.methods]

    def at(self, horizon: int) -> pd.DataFrame:
        """All metrics at one horizon, a table [method x metric]."""
        return self.scores.xs(int(horizon), level="horizon").loc[self.methods]

    def _display_horizons(self) -> list[int]:
        return sorted({h for h in (1, 5, 10, 20, 50, self.horizon) if h <= self.horizon})

    def checks(self) -> list[str]:
        """Plain statements on the issue's targets, averaged over horizons (Kronos only)."""
        if KRONOS not in self.paths:
            return []
        avg = self.scores.groupby(level="method").mean()
        lines = []
        others = [m for m in self.methods if m not in (KRONOS, CALIBRATED)]
        if others:
            best = avg.loc[others, "crps"].idxmin()
            k, b = avg.loc[KRONOS, "crps"], avg.loc[best, "crps"]
            verdict = "at or below" if k <= b else "ABOVE"
            lines.append(
                f"CRPS (mean over horizons): kronos {k:.5f} is {verdict} the best baseline {best} {b:.5f}"
            )
        cov = avg.loc[KRONOS, "coverage"]
        inside = "inside" if 0.75 <= cov <= 0.85 else "OUTSIDE"
        lines.append(f"80% interval coverage: {cov:.3f}, {inside} the target 0.75..0.85")
        if "garch" in self.paths:
            for m in ("vol_mae", "vol_qlike"):
                k, g = avg.loc[KRONOS, m], avg.loc["garch", m]
                lines.append(f"{m}: kronos {k:.5f} vs garch {g:.5f} ({'better' if k < g else 'NOT better'})")
        h1 = self.at(1).loc[KRONOS]
        lines.append(f"RankIC at h=1: {h1['rank_ic']:.4f} (t = {h1['rank_ic_t']:.2f})")
        if CALIBRATED in self.paths:
            cov = avg.loc[CALIBRATED, "coverage"]
            inside = "inside" if 0.75 <= cov <= 0.85 else "OUTSIDE"
            lines.append(f"80% interval coverage calibrated: {cov:.3f}, {inside} the target 0.75..0.85")
            if "bootstrap" in self.paths:
                c, b = avg.loc[CALIBRATED, "crps"], avg.loc["bootstrap", "crps"]
                verdict = "at or below" if c <= b else "ABOVE"
                lines.append(f"CRPS calibrated {c:.5f} is {verdict} the bootstrap baseline {b:.5f}")
        return lines

    # ------------------------------------------------------------------ calibration diagnostics

    def _calibration_rows(self) -> dict[str, str]:
        """Report row label -> method: raw and calibrated Kronos, and the bootstrap baseline to compare with."""
        rows = {"raw": KRONOS, "calibrated": CALIBRATED, "bootstrap": "bootstrap"}
        return {label: m for label, m in rows.items() if m in self.paths}

    def coverage_by_horizon(self) -> pd.DataFrame:
        """Coverage of the central ``level`` band per horizon, rows raw / calibrated / bootstrap, columns 1..H."""
        table = self.metric("coverage")
        return pd.DataFrame({label: table[m] for label, m in self._calibration_rows().items()}).T

    def pit_histograms(self, bins: int = 10) -> dict[str, np.ndarray]:
        """Share of PIT values per bin (all origins and horizons) for each calibration row."""
        return {label: pit_histogram(pit_values(self.paths[m], self.realised), bins)
                for label, m in self._calibration_rows().items()}  # fmt: skip

    def reliability(self, levels: Sequence[float] = RELIABILITY_LEVELS) -> dict[str, np.ndarray]:
        """Observed coverage of central intervals at each nominal level for each calibration row."""
        return {label: reliability(self.paths[m], self.realised, levels)
                for label, m in self._calibration_rows().items()}  # fmt: skip

    def calibration_table(self) -> pd.DataFrame:
        """Rows raw / calibrated / bootstrap: band coverage (mean, worst and best horizon), width, CRPS, and the
        largest gap of a PIT-histogram bin from uniform (0 = perfectly calibrated)."""
        pits = self.pit_histograms()
        out = {}
        for label, m in self._calibration_rows().items():
            table = self.scores.xs(m, level="method")
            out[label] = {
                "coverage": table["coverage"].mean(),
                "coverage_min": table["coverage"].min(),
                "coverage_max": table["coverage"].max(),
                "width": table["width"].mean(),
                "crps": table["crps"].mean(),
                "pit_gap": float(np.abs(pits[label] - 1.0 / len(pits[label])).max()),
            }
        return pd.DataFrame(out).T

    def _calibration_markdown(self) -> list[str]:
        if CALIBRATED not in self.paths or self.calibration is None:
            return []
        spec = self.calibration["spec"]
        level = self.settings["level"]
        by_h = self.coverage_by_horizon()
        by_h.columns = [f"h={h}" for h in by_h.columns]
        return [
            f"## Calibration: raw vs calibrated ({spec['method']}, target {spec['target']:g})",
            "",
            f"Bands rescaled online per horizon; the forecast at origin t uses only forecasts whose outcome bar is "
            f"before t. The first {spec['warmup']} scored forecasts of each horizon keep the raw band (warm-up). "
            "Means over horizons; pit_gap: largest gap of a PIT-histogram bin (10 bins) from uniform.",
            "",
            _plain_table(self.calibration_table()),
            "",
            f"Coverage of the {level:.0%} band by horizon:",
            "",
            _plain_table(by_h),
            "",
        ]

    def to_markdown(self) -> str:
        """The report: settings, target checks, and every metric per method at a few horizons."""
        s = self.settings
        out = [
            f"# Forecast skill: {self.name}",
            "",
            f"{len(self.origins)} origins from {self.origins[0]} to {self.origins[-1]} (stride {s['stride']}); "
            f"lookback {s['lookback']}, horizon {s['horizon']}, {s['sample_count']} samples, seed {s['seed']}.",
            "",
        ]
        checks = self.checks()
        if checks:
            out += ["## Targets", ""] + [f"- {c}" for c in checks] + [""]
        out += self._calibration_markdown()
        for h in self._display_horizons():
            out += [f"## Horizon {h}", "", _markdown_table(self.at(h), self.settings["level"]), ""]
        out += ["## Definitions", "", *[f"- {line}" for line in DEFINITIONS], ""]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: settings, origins, and per-method lists of each metric over horizons 1..H."""
        scores = {
            m: {k: [finite_or_none(v) for v in self.metric(k)[m]] for k in self.scores.columns}
            for m in self.methods
        }
        return {
            "name": self.name,
            "settings": {k: _jsonable(v) for k, v in self.settings.items()},
            "origins": {
                "count": len(self.origins),
                "first": str(self.origins[0]),
                "last": str(self.origins[-1]),
            },
            "horizons": list(range(1, self.horizon + 1)),
            "scores": scores,
            "checks": self.checks(),
            "calibration": self._calibration_dict(),
        }

    def _calibration_dict(self) -> dict[str, Any] | None:
        """Raw vs calibrated: the table, coverage by horizon, PIT histograms, reliability, scales issued."""
        if CALIBRATED not in self.paths or self.calibration is None:
            return None
        table = self.calibration_table()
        return {
            **self.calibration,
            "rows": {label: {k: finite_or_none(v) for k, v in row.items()} for label, row in table.iterrows()},
            "coverage_by_horizon": {k: [finite_or_none(v) for v in row] for k, row in self.coverage_by_horizon().iterrows()},
            "pit_histogram": {k: v.tolist() for k, v in self.pit_histograms().items()},
            "reliability": {"levels": list(RELIABILITY_LEVELS),
                            **{k: v.tolist() for k, v in self.reliability().items()}},
        }  # fmt: skip

    def to_json(self, indent: int = 2) -> str:
        """The report as strict JSON (NaN and infinities become null)."""
        return json.dumps(self.to_dict(), indent=indent)

    def plot_fan(self, path: str | Path, *, origin: int = -1, method: str | None = None) -> Path:
        """Fan chart (10-90 % and 25-75 % bands, median) of one origin on the price, with the realised path."""
        method = method or next((m for m in (KRONOS, "garch") if m in self.paths), self.methods[0])
        pos = int(self.positions[origin])
        past = self.close.iloc[max(0, pos - max(3 * self.horizon, 30)) : pos]
        # the future lines start at the last history bar so the fan visibly grows out of it
        future = self.close.index[pos - 1 : pos + self.horizon]
        start = self.last_close[origin]
        q = np.quantile(self.paths[method][origin], [0.1, 0.25, 0.5, 0.75, 0.9], axis=0)
        q = np.concatenate([np.full((5, 1), start), q], axis=1)
        fig, ax = new_figure(figsize=(9, 4.5))
        ax.plot(past.index, past.to_numpy(), color="black", lw=1.2, label="history")
        ax.plot(future, np.r_[start, self.realised[origin]], color="black", lw=1.2, ls="--", label="realised")
        ax.fill_between(future, q[0], q[4], alpha=0.2, color="C0", label="10-90 %")
        ax.fill_between(future, q[1], q[3], alpha=0.35, color="C0", label="25-75 %")
        ax.plot(future, q[2], color="C0", lw=1.5, label=f"{method} median")
        ax.set_title(f"{self.name}: {method} forecast from {self.origins[origin]}")
        ax.set_ylabel("close")
        ax.legend(loc="best", fontsize=8)
        fig.autofmt_xdate()
        return save_figure(fig, path, dpi=110)

    def plot_metrics(self, path: str | Path, metrics: Sequence[str] = PLOT_METRICS) -> Path:
        """One panel per metric, one line per method, against the horizon."""
        cols = min(3, len(metrics))
        rows = math.ceil(len(metrics) / cols)
        fig, axes = new_figure(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
        for ax, name in zip(axes.flat, metrics):
            table = self.metric(name)
            for m in self.methods:
                ax.plot(table.index, table[m].to_numpy(), marker="o", ms=3, label=m)
            if name == "coverage":
                ax.axhline(self.settings["level"], color="grey", ls=":")
            ax.set_title(name)
            ax.set_xlabel("horizon")
        for ax in list(axes.flat)[len(metrics) :]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"{self.name}: skill vs horizon ({len(self.origins)} origins)")
        return save_figure(fig, path, dpi=110)

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``report.md``, ``report.json``, ``fan.png`` and ``metrics.png`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(self.to_markdown())
        (out / "report.json").write_text(self.to_json())
        return {
            "markdown": out / "report.md",
            "json": out / "report.json",
            "fan": self.plot_fan(out / "fan.png"),
            "metrics": self.plot_metrics(out / "metrics.png"),
            **(
                {"calibration": self.plot_calibration(out / "calibration.png")}
                if CALIBRATED in self.paths
                else {}
            ),
        }

    def plot_calibration(self, path: str | Path) -> Path:
        """PIT histograms, reliability curves and coverage by horizon: raw vs calibrated vs bootstrap."""
        return plot_calibration(
            self.pit_histograms(), self.reliability(), RELIABILITY_LEVELS,
            {k: row.to_numpy() for k, row in self.coverage_by_horizon().iterrows()},
            target=self.settings["level"], output=path, title=f"{self.name}: calibration ({len(self.origins)} origins)",
        )  # fmt: skip


DEFINITIONS: tuple[str, ...] = (
    "Origin t: the lookback bars strictly before t form the window; targets are closes of bars t..t+h-1.",
    "Point forecast = mean of the sample closes; mae/rmse are in price units.",
    "hit_rate: sign of the predicted mean return equals the realised sign (a zero return counts 0.5).",
    "ic / rank_ic: Pearson / Spearman correlation over origins of predicted mean vs realised h-step return;"
    " t-statistics use N*min(1, stride/h) independent origins because longer returns overlap.",
    "crps: exact CRPS of the sample distribution of close/last_close (return units; a point mass scores |error|).",
    "coverage / width: share of outcomes inside the central interval, and its mean width in return units.",
    "vol_mae: |mean over samples of |log step return| - realised |log step return||; vol_qlike: log v + r^2/v"
    " with v the sampled mean squared log step return; vol_ic: correlation of forecast vs realised |return|.",
    "Baselines: random_walk (last close, point mass); drift (Gaussian log returns with the window's mean/std);"
    " bootstrap (window log returns resampled); garch (GARCH(1,1), constant mean, fitted per window).",
)


def finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value: object) -> object:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _plain_table(table: pd.DataFrame) -> str:
    """A [row x column] markdown table of numbers (4 significant digits, n/a for missing)."""
    lines = ["| | " + " | ".join(map(str, table.columns)) + " |", "|---" * (len(table.columns) + 1) + "|"]
    for label, row in table.iterrows():
        cells = ["n/a" if not np.isfinite(v) else f"{v:.4g}" for v in row.to_numpy(np.float64)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown_table(table: pd.DataFrame, level: float) -> str:
    """A [method x metric] table in markdown with the best value of each ranked column in bold."""
    best: dict[str, float] = {}
    for col in table.columns:
        vals = table[col].replace([np.inf, -np.inf], np.nan)
        if vals.notna().any() and col in LOWER_IS_BETTER:
            best[col] = vals.min()
        elif vals.notna().any() and col in HIGHER_IS_BETTER:
            best[col] = vals.max()
        elif vals.notna().any() and col == "coverage":
            best[col] = vals.iloc[int(np.nanargmin(np.abs(vals.to_numpy() - level)))]
    lines = ["| method | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    for method, row in table.iterrows():
        cells = []
        for col, v in row.items():
            text = "n/a" if not np.isfinite(v) else f"{v:.4g}"
            cells.append(f"**{text}**" if col in best and v == best[col] else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
