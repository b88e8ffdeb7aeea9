"""Known model names -> matching (tokenizer, predictor, context length), for one-call loading."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError
from .hub import BUNDLED_MODELS


@dataclass(frozen=True)
class ModelPair:
    """Where to load a tokenizer and a predictor from, and the context length they were trained with."""

    name: str
    tokenizer: str
    model: str
    max_context: int
    tokenizer_revision: str | None = None
    model_revision: str | None = None


RELEASED: dict[str, ModelPair] = {
    "NeoQuasar/Kronos-mini": ModelPair(
        "NeoQuasar/Kronos-mini", "NeoQuasar/Kronos-Tokenizer-2k", "NeoQuasar/Kronos-mini", 2048
    ),
    "NeoQuasar/Kronos-small": ModelPair(
        "NeoQuasar/Kronos-small", "NeoQuasar/Kronos-Tokenizer-base", "NeoQuasar/Kronos-small", 512
    ),
    "NeoQuasar/Kronos-base": ModelPair(
        "NeoQuasar/Kronos-base", "NeoQuasar/Kronos-Tokenizer-base", "NeoQuasar/Kronos-base", 512
    ),
}


def _local_pair(name: str, root: Path) -> ModelPair:
    """A directory holding ``tokenizer/`` and ``predictor/`` (and optionally ``kronos_bt.json``)."""
    if not (root / "tokenizer").is_dir() or not (root / "predictor").is_dir():
        raise CheckpointError(
            f"{root}: a model directory needs 'tokenizer/' and 'predictor/' sub-directories "
            "(or load the two modules separately and build KronosPredictor(model, tokenizer))"
        )
    meta_path = root / "kronos_bt.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return ModelPair(
        name, str(root / "tokenizer"), str(root / "predictor"), int(meta.get("max_context", 512))
    )


def resolve_pair(name_or_path: str | os.PathLike) -> ModelPair:
    """Resolve a released hub name, the bundled name or a local directory to a :class:`ModelPair`."""
    key = str(name_or_path)
    if key in RELEASED:
        return RELEASED[key]
    if key in BUNDLED_MODELS:
        root = BUNDLED_MODELS[key]
        if not root.is_dir():
            raise CheckpointError(
                f"the bundled model {key} is not installed at {root}; run `make train-default`"
            )
        return _local_pair(key, root)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _local_pair(str(path), path)
    known = ", ".join([*RELEASED, *BUNDLED_MODELS])
    raise CheckpointError(
        f"unknown model {key!r}: use one of {known}, or a local directory with tokenizer/ and predictor/"
    )
