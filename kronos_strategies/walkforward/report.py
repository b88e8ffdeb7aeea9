"""Walk-forward report: per fold the train range, validation loss, forecast skill (fine-tuned vs frozen base
model on the fold's own bars) and time spent, as JSON, markdown and a PNG of skill over folds.

Skill is scored at the indicator's horizon ``h`` with :mod:`kronos_model.metrics`, in return units
(close / close at the forecast bar): CRPS of the sampled paths (lower is better), direction hit rate
of the mean path and the MAE of the mean return. A forecast is scored only when its ``h`` realised
bars exist in the data; realised bars are used for scoring only, never for trading.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_model.metrics import crps_samples, hit_rate, mae

from ..reporting import new_figure, save_figure, write_json

__all__ = ["fold_table", "skill", "write_walkforward_report"]

SKILL_NAMES: tuple[str, ...] = ("crps", "hit_rate", "mae")
MATERIAL = 0.01  # a pooled CRPS change smaller than 1 % is reported as no material difference


def skill(
    forecasts: list[Any], bars: pd.DataFrame, positions: np.ndarray, horizon: int
) -> dict[str, float | int]:
    """CRPS, hit rate and MAE (return units) at ``horizon`` of forecasts made at bar ``positions``."""
    close = bars["close"].to_numpy(np.float64)
    keep = [j for j, p in enumerate(positions.tolist()) if p + horizon < len(close)]
    if not keep:
        return {"scored": 0, **{name: float("nan") for name in SKILL_NAMES}}
    last = np.array([forecasts[j].last_close for j in keep], np.float64)
    rel = (
        np.stack([forecasts[j].paths("close")[:, horizon - 1] for j in keep]).astype(np.float64)
        / last[:, None]
    )
    realised = close[positions[keep] + horizon] / last
    return {
        "scored": len(keep),
        "crps": float(crps_samples(rel, realised).mean()),
        "hit_rate": float(hit_rate(rel.mean(axis=1) - 1.0, realised - 1.0)),
        "mae": float(mae(rel.mean(axis=1) - 1.0, realised - 1.0)),
    }


def fold_table(result: Any, bars: pd.DataFrame) -> pd.DataFrame:
    """One row per fold: ranges, validation loss, skill of both models, seconds; indexed by fold number."""
    h = result.spec.horizon
    rows = []
    for o in result.folds:
        f, r = o.fold, o.record
        row: dict[str, Any] = {
            "fold": f.index,
            "train_from": f.train_from, "train_to": f.train_to, "train_bars": r["train_bars"],
            "trade_from": f.trade_from, "trade_to": f.trade_to, "forecasts": len(o.positions),
            "val_loss": r.get("val_loss"), "tokenizer_val_loss": r.get("tokenizer_val_loss"),
            "trained_now": o.trained, "train_seconds": r.get("train_seconds"),
            "forecast_seconds": o.forecast_seconds, "base_seconds": o.base_seconds,
        }  # fmt: skip
        tuned = skill(o.forecasts, bars, o.positions, h)
        row["scored"] = tuned.pop("scored")
        row.update({f"{k}_finetuned": v for k, v in tuned.items()})
        if o.base_forecasts is not None:
            base = skill(o.base_forecasts, bars, o.positions, h)
            base.pop("scored")
            row.update({f"{k}_base": v for k, v in base.items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("fold")


def _pooled(result: Any, bars: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """Skill over all folds' bars together, per model."""
    h = result.spec.horizon
    positions = np.concatenate([o.positions for o in result.folds])
    out = {"finetuned": skill([f for o in result.folds for f in o.forecasts], bars, positions, h)}
    if all(o.base_forecasts is not None for o in result.folds):
        out["base"] = skill([f for o in result.folds for f in o.base_forecasts], bars, positions, h)
    return out


def _verdict(table: pd.DataFrame, pooled: dict[str, dict[str, float | int]]) -> str:
    """One honest sentence: did refitting beat the frozen model on CRPS and hit rate?"""
    if "base" not in pooled or "crps_base" not in table:
        return "No frozen-base comparison was run (finetune.compare_base is false)."
    both = table[["crps_finetuned", "crps_base"]].dropna()
    wins = int((both["crps_finetuned"] < both["crps_base"]).sum())
    ft, base = pooled["finetuned"], pooled["base"]
    change = (ft["crps"] - base["crps"]) / base["crps"] if base["crps"] else float("nan")
    if not np.isfinite(change) or abs(change) < MATERIAL:
        better = "made no material difference"
    else:
        better = "helped" if change < 0 else "hurt"
    return (
        f"Refitting {better} on CRPS: pooled CRPS {ft['crps']:.5f} fine-tuned vs {base['crps']:.5f} frozen "
        f"({100 * change:+.2f}%), lower in {wins} of {len(both)} folds; hit rate {ft['hit_rate']:.3f} vs "
        f"{base['hit_rate']:.3f}; MAE {ft['mae']:.5f} vs {base['mae']:.5f}."
    )


def _fmt(value: Any, spec: str = ".4f") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, pd.Timestamp):
        return str(value.date()) if value == value.normalize() else str(value)
    return format(value, spec) if isinstance(value, float) else str(value)


def _markdown(result: Any, table: pd.DataFrame, pooled: dict[str, Any], verdict: str) -> str:
    s, spec = result.settings, result.spec
    window = s.window if s.window == "expanding" else f"{s.window} bars"
    lines = [
        "# Walk-forward fine-tuning",
        "",
        f"{len(table)} folds, refit every {s.every} (training window {window}, start from {s.init}, "
        f"tokenizer {'fine-tuned' if s.train_tokenizer else 'frozen'}), {s.steps or 'all'} steps/fold at lr {s.lr:g}, "
        f"seed {s.seed}. Skill at horizon {spec.horizon} in return units; {result.trained} folds trained in this run, "
        f"{result.seconds:.1f} s in total.",
        "",
        verdict,
        "",
        "| fold | train | bars | val loss | trade | forecasts | CRPS ft | CRPS base | hit ft | hit base "
        "| MAE ft | MAE base | train s | forecast s |",
        "|---" * 14 + "|",
    ]
    for k, r in table.iterrows():
        cells = [
            str(k), f"{_fmt(r['train_from'])}..{_fmt(r['train_to'])}", str(r["train_bars"]), _fmt(r["val_loss"]),
            f"{_fmt(r['trade_from'])}..{_fmt(r['trade_to'])}", str(r["forecasts"]),
            _fmt(r["crps_finetuned"], ".5f"), _fmt(r.get("crps_base"), ".5f"),
            _fmt(r["hit_rate_finetuned"], ".3f"), _fmt(r.get("hit_rate_base"), ".3f"),
            _fmt(r["mae_finetuned"], ".5f"), _fmt(r.get("mae_base"), ".5f"),
            _fmt(r["train_seconds"], ".1f") + ("" if r["trained_now"] else " (cached)"),
            _fmt(r["forecast_seconds"] + r["base_seconds"], ".1f"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Pooled over all folds:", ""]
    for model, values in pooled.items():
        lines.append(
            f"- {model}: CRPS {_fmt(values['crps'], '.5f')}, hit rate {_fmt(values['hit_rate'], '.3f')}, "
            f"MAE {_fmt(values['mae'], '.5f')} ({values['scored']} forecasts scored)"
        )
    return "\n".join(lines) + "\n"


def _plot(table: pd.DataFrame, output: Path) -> Path:
    """CRPS and hit rate per fold, fine-tuned vs frozen base."""
    x = np.arange(len(table))
    labels = [_fmt(t) for t in table["trade_from"]]
    fig, axes = new_figure(2, 1, figsize=(9, 6), sharex=True)
    for ax, metric, title in ((axes[0], "crps", "CRPS (lower is better)"), (axes[1], "hit_rate", "Hit rate")):
        ax.plot(x, table[f"{metric}_finetuned"], marker="o", label="fine-tuned (walk-forward)")
        if f"{metric}_base" in table:
            ax.plot(x, table[f"{metric}_base"], marker="s", ls="--", label="frozen base")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].axhline(0.5, color="grey", lw=0.8)
    axes[0].legend()
    axes[1].set_xticks(x, labels, rotation=45, ha="right")
    axes[1].set_xlabel("fold (first traded bar)")
    return save_figure(fig, output, dpi=110)


def write_walkforward_report(
    result: Any, bars: pd.DataFrame, out_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write ``walkforward.json``, ``walkforward.md`` and ``walkforward_skill.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = fold_table(result, bars)
    pooled = _pooled(result, bars)
    verdict = _verdict(table, pooled)
    records = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in table.reset_index().to_dict(orient="records")
    ]
    files = {
        "json": write_json(
            {
                "settings": vars(result.settings),
                "forecast": vars(result.spec),
                "folds": records,
                "pooled": pooled,
                "verdict": verdict,
                "seconds": result.seconds,
                "trained": result.trained,
                "fingerprint": result.predictor.fingerprint,
            },
            out / "walkforward.json",
        ),  # fmt: skip
        "markdown": out / "walkforward.md",
        "plot": _plot(table, out / "walkforward_skill.png"),
    }
    files["markdown"].write_text(_markdown(result, table, pooled, verdict))
    return files
