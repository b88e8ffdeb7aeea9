"""Settings of one fine-tuning run (:class:`FinetuneConfig`), shared by the loop, the windows and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..errors import FinetuneConfigError

PRECISIONS = ("auto", "fp32", "bf16")
# Fields that only say where/how a run is executed or checkpointed: a resumed run may change them.
RUNTIME_FIELDS = frozenset(
    {"epochs", "device", "verbose", "checkpoint_dir", "checkpoint_every", "keep_checkpoints", "resume"}
)


@dataclass
class FinetuneConfig:
    """Settings of one fine-tuning run (windows, split, optimiser, schedule, stopping, device, checkpoints)."""

    lookback: int = 256  # bars the statistics (and the model context) come from
    horizon: int = 24  # bars after the lookback that belong to the same window
    batch_size: int = 32  # global batch: windows per optimiser step over all processes
    micro_batch_size: int | None = None  # windows per forward pass; None: batch_size / world size
    epochs: int = 10
    steps_per_epoch: int | None = None  # None: one pass over the training windows
    max_steps: int | None = None  # hard cap on optimiser steps over the whole run
    lr: float = 2e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup: float = 0.05  # < 1: fraction of all steps; >= 1: number of steps
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    grad_clip: float = 2.0
    patience: int = 3  # stop after this many epochs in a row without a better validation loss
    val_fraction: float = 0.1  # share of the (pooled) bars after the cut-off
    val_start: str | None = None  # explicit cut-off time; overrides val_fraction
    stride: int = 1  # distance in bars between consecutive window starts
    max_val_windows: int | None = 512  # evenly spaced subset bounding validation cost
    clip: float = 5.0  # normalised values are clipped to +-clip, as at inference
    seed: int = 0
    device: str | None = None  # None: cuda when available, else cpu
    precision: str = "auto"  # "auto": bf16 autocast on cuda, fp32 elsewhere; or "fp32" / "bf16"
    checkpoint_dir: str | None = None  # periodic resumable checkpoints go here (None: none)
    checkpoint_every: int = 0  # optimiser steps between checkpoints (0: at the end of each epoch only)
    keep_checkpoints: int = 2  # newest checkpoints kept per stage
    resume: bool = False  # continue from the newest checkpoint in checkpoint_dir, when there is one
    verbose: bool = True

    def __post_init__(self) -> None:
        positive = ("lookback", "batch_size", "epochs", "stride", "keep_checkpoints")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise FinetuneConfigError(f"FinetuneConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("horizon", "patience", "checkpoint_every"):
            if int(getattr(self, name)) < 0:
                raise FinetuneConfigError(f"FinetuneConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("steps_per_epoch", "max_steps", "max_val_windows", "micro_batch_size"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise FinetuneConfigError(f"FinetuneConfig.{name} must be None or >= 1, got {value}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise FinetuneConfigError(
                f"FinetuneConfig.val_fraction must be in [0, 1), got {self.val_fraction}"
            )
        if self.lr <= 0 or self.grad_clip <= 0 or self.clip <= 0 or self.warmup < 0:
            raise FinetuneConfigError("FinetuneConfig.lr, grad_clip and clip must be > 0 and warmup >= 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise FinetuneConfigError(
                f"FinetuneConfig.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}"
            )
        if self.precision not in PRECISIONS:
            raise FinetuneConfigError(
                f"FinetuneConfig.precision must be one of {list(PRECISIONS)}, got {self.precision!r}"
            )
        if self.resume and self.checkpoint_dir is None:
            raise FinetuneConfigError(
                "FinetuneConfig.resume needs checkpoint_dir (where the checkpoints are)"
            )
        if self.val_start is not None:
            try:
                pd.Timestamp(self.val_start)
            except (TypeError, ValueError) as exc:
                raise FinetuneConfigError(
                    f"FinetuneConfig.val_start {self.val_start!r} is not a time: {exc}"
                ) from exc
        self.betas = (float(self.betas[0]), float(self.betas[1]))

    def micro_batches(self, world_size: int) -> tuple[int, int]:
        """(micro-batch size, accumulation steps) holding the global batch fixed over ``world_size`` processes."""
        micro = self.micro_batch_size or max(1, self.batch_size // world_size)
        if self.batch_size % (micro * world_size):
            raise FinetuneConfigError(
                f"FinetuneConfig.batch_size {self.batch_size} is not a multiple of micro_batch_size {micro} x "
                f"{world_size} processes; pick a batch_size divisible by both so the global batch stays fixed"
            )
        return micro, self.batch_size // (micro * world_size)
