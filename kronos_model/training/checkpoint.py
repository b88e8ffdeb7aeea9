"""Atomic, resumable training checkpoints: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``<dir>/<kind>/step-00000050/`` holding ``state.safetensors`` (weights, best
weights, optimiser moments, torch RNG) and ``state.json`` (step, epoch, schedule, sampler position,
history, config). It is written under a temporary name and renamed into place, then ``latest`` is
replaced atomically, so a run killed at any moment leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
LATEST = "latest"


def _flat_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser ``state_dict`` into tensors (``opt.<param>.<name>``) and a JSON part."""
    tensors, scalars = {}, {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"opt.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflat_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Rebuild an optimiser ``state_dict`` from :func:`_flat_optimizer`'s two parts."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save(
    directory: str | Path, kind: str, step: int, tensors: dict[str, Any], meta: dict[str, Any], keep: int
) -> Path:
    """Write one checkpoint atomically and point ``latest`` at it; keep the newest ``keep`` checkpoints."""
    root = Path(directory) / kind
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    flat: dict[str, torch.Tensor] = {}
    for prefix in ("model", "best"):
        for name, value in (tensors.get(prefix) or {}).items():
            flat[f"{prefix}.{name}"] = value.detach().cpu().contiguous()
    opt_tensors, opt_meta = _flat_optimizer(tensors["optimizer"])
    flat.update(opt_tensors)
    for name, value in tensors.get("rng", {}).items():
        flat[f"rng.{name}"] = value.cpu().contiguous()
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        save_file(flat, str(tmp / STATE_TENSORS))
        body = json.dumps({**meta, "optimizer": opt_meta, "has_best": "best" in tensors}, sort_keys=True)
        (tmp / STATE_JSON).write_text(body)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(final.name + "\n")
    os.replace(pointer, root / LATEST)
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(directory: str | Path, kind: str) -> Path | None:
    """The newest complete checkpoint of ``kind`` under ``directory``, or None."""
    pointer = Path(directory) / kind / LATEST
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not (path / STATE_JSON).is_file() or not (path / STATE_TENSORS).is_file():
        raise CheckpointError(
            f"checkpoint {path} named by {pointer} is incomplete; delete {pointer} to start over"
        )
    return path


def load(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors by group: model, best, optimizer, rng; JSON metadata) of one checkpoint folder."""
    path = Path(path)
    meta = json.loads((path / STATE_JSON).read_text())
    flat = load_file(str(path / STATE_TENSORS))
    groups: dict[str, Any] = {"model": {}, "best": {}, "rng": {}}
    for key, value in flat.items():
        prefix, _, name = key.partition(".")
        if prefix in groups:
            groups[prefix][name] = value
    groups["optimizer"] = _unflat_optimizer(flat, meta["optimizer"])
    if not meta.get("has_best"):
        groups["best"] = None
    return groups, meta
