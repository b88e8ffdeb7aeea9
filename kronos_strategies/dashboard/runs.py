"""Find run folders under the given roots and read their files; a broken folder becomes an error row.

A run folder is any folder that holds ``metrics.json``, ``manifest.json`` or ``sweep.json``, at any depth.
Symlinked folders are never entered (a ``latest`` link is the same run as its target, which is walked
anyway) and a file that resolves outside its root is treated as missing, so nothing outside the roots
is ever read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kronos_strategies.paper.journal import public_settings

MARKERS = ("metrics.json", "manifest.json", "sweep.json")
MAX_DEPTH = 8  # deeper folders are not searched: a runs folder is never that deep, a home folder is
MAX_JSON_BYTES = 20_000_000
_SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".kronos_cache"}


@dataclass(frozen=True)
class RunRef:
    """Where a run lives: ``root`` index and the folder relative to it (the URL id is ``<root>/<rel>``)."""

    root_index: int
    root: Path
    folder: Path

    @property
    def rel(self) -> str:
        """The folder relative to its root, '/'-separated ('.' for the root itself)."""
        return self.folder.relative_to(self.root).as_posix()

    @property
    def run_id(self) -> str:
        """Stable id used in URLs."""
        return f"{self.root_index}/{self.rel}"


@dataclass
class RunSummary:
    """One row of the runs table."""

    id: str
    folder: str
    kind: str
    name: str
    asset: str | None = None
    start: str | None = None
    end: str | None = None
    sharpe: float | None = None
    cagr: float | None = None
    max_drawdown: float | None = None
    trades: int | None = None
    model: str | None = None
    created: str | None = None
    error: str | None = None
    files: list[str] = field(default_factory=list)


def discover(roots: Sequence[Path]) -> dict[str, RunRef]:
    """Every run folder under ``roots`` by id, in a stable order; symlinked folders are not followed."""
    found: dict[str, RunRef] = {}
    seen: set[Path] = set()
    for index, root in enumerate(roots):
        root = Path(root).resolve()
        if not root.is_dir():
            continue
        for folder in _walk(root):
            real = folder.resolve()
            if real in seen:
                continue
            seen.add(real)
            ref = RunRef(index, root, folder)
            found[ref.run_id] = ref
    return found


def _walk(root: Path) -> list[Path]:
    """Folders under ``root`` (itself included) that hold a run marker file, sorted."""
    out: list[Path] = []
    base_depth = len(root.parts)
    for current, dirs, files in os.walk(root, followlinks=False):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")
                         and not (here / d).is_symlink())  # fmt: skip
        if len(here.parts) - base_depth >= MAX_DEPTH:
            dirs[:] = []
        if any(m in files for m in MARKERS):
            out.append(here)
    return sorted(out)


def safe_file(ref: RunRef, name: str) -> Path | None:
    """``name`` inside the run folder if it is a regular file that resolves inside the root, else None."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return None
    path = ref.folder / name
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(ref.root) or not real.is_file():
        return None
    return real


def read_json(ref: RunRef, name: str) -> Any:
    """Parsed JSON file of the run, None when absent; ValueError with the reason when unreadable."""
    path = safe_file(ref, name)
    if path is None:
        return None
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"{name} is larger than {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name} is not valid JSON ({exc})") from None


def redact(value: Any) -> Any:
    """A copy with every key that looks like a credential replaced by '***' (``*_env`` names are kept)."""
    if isinstance(value, dict):
        return {k: ("***" if _secret_key(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _secret_key(key: str) -> bool:
    """The journal's own rule for what may be a credential (``public_settings`` drops exactly these keys)."""
    return key not in public_settings({key: None})


def _number(value: Any) -> float | None:
    """A finite float or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _get(data: Any, *keys: str) -> Any:
    """Nested dict lookup that returns None on any missing level or non-dict."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def model_name(config: Any) -> str | None:
    """The model a config names: hub id, local predictor folder name, or the bundled default."""
    model = _get(config, "model")
    if not isinstance(model, dict):
        return None
    if model.get("name"):
        return str(model["name"])
    if model.get("predictor"):
        path = Path(str(model["predictor"]))
        return f"{path.parent.name}/{path.name}" if path.name in ("predictor", "model") else path.name
    return "kronos-bt/nano"


def asset_name(config: Any) -> str | None:
    """The asset (or universe) a config trades."""
    data = _get(config, "data")
    if isinstance(data, dict):
        for key in ("name", "dataset", "symbol"):
            if data.get(key):
                return str(data[key])
        if data.get("path"):
            return Path(str(data["path"])).name
    assets = _get(config, "assets")
    if isinstance(assets, list) and assets:
        return ", ".join(str(a.get("name", a) if isinstance(a, dict) else a) for a in assets[:5])
    return None


def summarize(ref: RunRef) -> RunSummary:
    """The runs-table row of one folder; any unreadable or missing piece becomes ``error``."""
    row = RunSummary(id=ref.run_id, folder=ref.rel, kind="backtest", name=ref.folder.name)
    try:
        row.files = sorted(p.name for p in ref.folder.iterdir() if p.is_file() and safe_file(ref, p.name))
        _fill_summary(ref, row)
    except (ValueError, OSError) as exc:
        row.error = str(exc)
    return row


def _fill_summary(ref: RunRef, row: RunSummary) -> None:
    """Read the marker files into ``row``; raises ValueError on a broken file."""
    sweep = read_json(ref, "sweep.json")
    if sweep is not None:
        _fill_sweep(sweep, row)
        row.asset = _sweep_universe(ref) or row.asset
        return
    manifest = read_json(ref, "manifest.json")
    metrics = read_json(ref, "metrics.json")
    if manifest is not None and not isinstance(manifest, dict):
        raise ValueError("manifest.json is not a JSON object")
    config = _get(manifest, "config")
    row.name = str(_get(manifest, "name") or row.name)
    row.asset = asset_name(config)
    row.model = model_name(config)
    row.created = _get(manifest, "created")
    if "walkforward.json" in row.files or isinstance(_get(config, "finetune"), dict):
        row.kind = "walk-forward"
    if metrics is None:
        raise ValueError("metrics.json is missing (the run did not finish, or it was moved)")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("strategy"), dict):
        raise ValueError("metrics.json has no 'strategy' section")
    strat = metrics["strategy"]
    row.sharpe, row.cagr = _number(strat.get("sharpe")), _number(strat.get("cagr"))
    row.max_drawdown = _number(strat.get("max_drawdown"))
    trades = _number(strat.get("trades"))
    row.trades = None if trades is None else int(trades)
    row.start = _date(_get(metrics, "period", "start")) or _date(_get(config, "dates", "start"))
    row.end = _date(_get(metrics, "period", "end")) or _date(_get(config, "dates", "end"))
    if row.created is None:
        path = safe_file(ref, "metrics.json")
        if path is not None:
            from datetime import datetime, timezone

            row.created = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).isoformat()


def _fill_sweep(sweep: Any, row: RunSummary) -> None:
    """A sweep folder: its best run's numbers stand for the row."""
    if not isinstance(sweep, dict):
        raise ValueError("sweep.json is not a JSON object")
    row.kind = "sweep"
    row.name = str(sweep.get("name") or row.name)
    best = sweep.get("best") if isinstance(sweep.get("best"), dict) else {}
    row.asset = str(best.get("asset")) if best.get("asset") is not None else None
    row.sharpe, row.cagr = _number(best.get("sharpe")), _number(best.get("cagr"))
    row.max_drawdown = _number(best.get("max_drawdown"))
    trades = _number(best.get("trades"))
    row.trades = None if trades is None else int(trades)
    row.model = str(best["model"]) if best.get("model") is not None else None


def _sweep_universe(ref: RunRef, limit: int = 5) -> str | None:
    """The assets a sweep ran on, from its results.csv ('A, B, C +2 more'), None when unknown."""
    import csv

    path = safe_file(ref, "results.csv")
    if path is None:
        return None
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        assets = list(dict.fromkeys(r["asset"] for r in csv.DictReader(fh) if r.get("asset")))
    if not assets:
        return None
    more = f" +{len(assets) - limit} more" if len(assets) > limit else ""
    return ", ".join(assets[:limit]) + more


def _date(value: Any) -> str | None:
    """The date part of a timestamp string."""
    if value is None:
        return None
    return str(value)[:10]


def run_detail(ref: RunRef) -> dict[str, Any]:
    """Everything the run page shows except the series: summary, metrics, redacted manifest, extra reports."""
    row = summarize(ref)
    out: dict[str, Any] = {"summary": vars(row) | {"files": row.files}}
    for key, name in (("metrics", "metrics.json"), ("manifest", "manifest.json"),
                      ("walkforward", "walkforward.json"), ("sweep", "sweep.json")):  # fmt: skip
        try:
            value = read_json(ref, name)
        except (ValueError, OSError) as exc:
            value, out.setdefault("errors", {})[name] = None, str(exc)
        if value is not None:
            out[key] = redact(value)
    if "sweep" in out:
        out["sweep_results"] = _sweep_table(ref)
    return out


def _sweep_table(ref: RunRef, limit: int = 500) -> list[dict[str, Any]]:
    """The first ``limit`` rows of a sweep's results.csv (best first), [] when absent or unreadable."""
    import pandas as pd

    path = safe_file(ref, "results.csv")
    if path is None:
        return []
    try:
        table = pd.read_csv(path, nrows=limit)
    except (ValueError, OSError):
        return []
    return json.loads(table.to_json(orient="records"))
