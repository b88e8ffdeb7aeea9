"""A model's identity from its checkpoint files, without loading it: sweeps key their run ids with it.

Loading a model costs seconds (more for the released ones); a sweep whose runs are all recorded must not pay
it just to learn that nothing changed. The digest covers both modules' ``config.json`` and
``model.safetensors`` bytes and the context length, found the way :func:`kronos_strategies.runner.load_model`
finds them, so any change of weights, config or context gives a new id and the runs are done again.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from kronos_model.hub import CONFIG_NAME, DEFAULT_MODEL, WEIGHTS_NAME, resolve_model_dir
from kronos_model.registry import resolve_pair

from ..config import ModelConfig

__all__ = ["checkpoint_fingerprint"]

_BLOCK = 1 << 20


def checkpoint_fingerprint(model: ModelConfig) -> str:
    """sha256 (16 hex) of the tokenizer's and predictor's config and weight files plus the context length."""
    if model.predictor is not None:
        dirs = [resolve_model_dir(model.tokenizer), resolve_model_dir(model.predictor)]
        context = model.max_context or 512
    else:
        pair = resolve_pair(model.name or DEFAULT_MODEL)
        dirs = [
            resolve_model_dir(pair.tokenizer, revision=pair.tokenizer_revision),
            resolve_model_dir(pair.model, revision=model.revision or pair.model_revision),
        ]
        context = model.max_context or pair.max_context
    digest = hashlib.sha256(f"context={context}".encode())
    for folder in dirs:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            path = Path(folder) / name
            stat = path.stat()
            digest.update(name.encode())
            digest.update(_file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=32)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of one file, remembered per (path, size, mtime) for the life of the process."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
