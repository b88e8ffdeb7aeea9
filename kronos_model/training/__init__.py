"""Leak-safe fine-tuning (or training from scratch) of the Kronos tokenizer and predictor.

``config`` (settings), ``windows`` (series, split, batches), ``loop`` (the one training loop: single
process or DDP, resumable), ``checkpoint`` (atomic checkpoints), ``distributed`` (torch.distributed
plumbing) and ``api`` (the public entry points re-exported here).
"""

from __future__ import annotations

from .api import (
    PairResult,
    build_predictor,
    build_tokenizer,
    finetune,
    finetune_predictor,
    finetune_tokenizer,
)
from .config import FinetuneConfig, FinetuneConfigError
from .distributed import DistributedTrainingError
from .loop import (
    RECORD_FILE,
    GlobalBatchSampler,
    TrainResult,
    lr_factor,
    predictor_loss,
    tokenizer_loss,
)
from .windows import (
    Series,
    WindowSplit,
    data_fingerprint,
    date_ranges,
    load_series,
    make_batch,
    normalize_window,
    split_windows,
)

__all__ = [
    "RECORD_FILE",
    "DistributedTrainingError",
    "FinetuneConfig",
    "FinetuneConfigError",
    "GlobalBatchSampler",
    "PairResult",
    "Series",
    "TrainResult",
    "WindowSplit",
    "build_predictor",
    "build_tokenizer",
    "data_fingerprint",
    "date_ranges",
    "finetune",
    "finetune_predictor",
    "finetune_tokenizer",
    "load_series",
    "lr_factor",
    "make_batch",
    "normalize_window",
    "predictor_loss",
    "split_windows",
    "tokenizer_loss",
]
