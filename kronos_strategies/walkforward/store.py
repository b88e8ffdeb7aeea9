"""Fold checkpoints on disk: content-addressed keys, atomic ``save_pretrained`` directories, checked loading."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from kronos_model.errors import CheckpointError
from kronos_model.training import FinetuneConfig

from ..feeds import data_fingerprint

__all__ = [
    "FOLD_FILE", "WALKFORWARD_VERSION", "fold_key", "load_fold", "pair_predictor", "store_fold", "training_bars",
    "training_fingerprint",
]  # fmt: skip

FOLD_FILE = "fold.json"
WALKFORWARD_VERSION = 1  # bump when the meaning of a fold key or the stored layout changes


def training_fingerprint(train: pd.DataFrame | Mapping[str, pd.DataFrame]) -> str | dict[str, str]:
    """The identity of a fold's training bars: one frame's fingerprint, or each asset's by name (a universe)."""
    if isinstance(train, pd.DataFrame):
        return data_fingerprint(train)
    return {str(name): data_fingerprint(train[name]) for name in sorted(train)}


def training_bars(train: pd.DataFrame | Mapping[str, pd.DataFrame]) -> int:
    """Bars a fold trains on (over all assets of a universe)."""
    return len(train) if isinstance(train, pd.DataFrame) else sum(len(f) for f in train.values())


def fold_key(
    start_from: str,
    train: pd.DataFrame | Mapping[str, pd.DataFrame],
    ft: FinetuneConfig,
    *,
    train_tokenizer: bool,
    init: str,
) -> str:
    """sha256 key of one fold model: starting weights (fingerprint or previous key), bars, settings, seed.

    ``train`` is the fold's training frame, or for a universe its training frames by asset name.
    """
    settings = {k: v for k, v in asdict(ft).items() if k != "verbose"}
    head = {"v": WALKFORWARD_VERSION, "from": start_from, "init": init, "tokenizer": bool(train_tokenizer),
            "finetune": settings, "data": training_fingerprint(train)}  # fmt: skip
    return hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode()).hexdigest()


def pair_predictor(model: Any, tokenizer: Any, like: Any) -> Any:
    """A ``KronosPredictor`` over a module pair with the base predictor's device, context and clip."""
    from kronos_model import KronosPredictor

    return KronosPredictor(model, tokenizer, device=str(like.device), max_context=like.max_context,
                           clip=getattr(like, "clip", 5))  # fmt: skip


def load_fold(directory: Path, fingerprint: str, like: Any) -> Any:
    """Load a stored fold pair and check it is the model that was recorded."""
    from kronos_model import Kronos, KronosTokenizer

    predictor = pair_predictor(
        Kronos.from_pretrained(directory / "predictor"),
        KronosTokenizer.from_pretrained(directory / "tokenizer"),
        like,
    )
    if predictor.fingerprint != fingerprint:
        raise CheckpointError(f"fold checkpoint {directory} does not match its record; delete the directory")
    return predictor


def store_fold(result: Any, record: dict[str, Any], directory: Path) -> None:
    """Write the fold's pair and record into a temporary directory, then rename it into place (atomic)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{directory.name[:12]}-", dir=directory.parent))
    try:
        result.save(tmp)
        (tmp / FOLD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, directory)
    except OSError:
        if not (directory / FOLD_FILE).is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
