"""Leak-safe fine-tuning (or training from scratch) of the Kronos tokenizer and predictor.

Windows of ``lookback + horizon (+1)`` bars are cut from each OHLCV series and normalised with the
statistics of their own lookback rows only, exactly as at inference (no future bar ever enters the
mean/std). The train/validation split is a single cut-off time shared by all series: every validation
window starts at or after it, every training window ends before it. Losses follow the reference
(KRONOS_SPEC 6.1/6.2); the optimiser is AdamW with linear warm-up then cosine decay, gradient clipping
and early stopping on the validation loss, with the best weights restored at the end.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .config import KronosConfig, KronosTokenizerConfig, config_to_dict
from .errors import CheckpointError, KronosError
from .predictor import resolve_device
from .tokenizer import KronosTokenizer
from .transformer import Kronos
from .windows import (  # noqa: F401  (re-exported: the window helpers used to live here)
    Series,
    WindowSplit,
    data_fingerprint,
    date_ranges,
    load_series,
    make_batch,
    normalize_window,
    split_windows,
)

RECORD_FILE = "training_record.json"


class FinetuneConfigError(KronosError, ValueError):
    """A :class:`FinetuneConfig` value is out of range; the message names the field and the allowed values."""


@dataclass
class FinetuneConfig:
    """Settings of one fine-tuning run (windows, split, optimiser, schedule, stopping, device)."""

    lookback: int = 256  # bars the statistics (and the model context) come from
    horizon: int = 24  # bars after the lookback that belong to the same window
    batch_size: int = 32
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
    verbose: bool = True

    def __post_init__(self) -> None:
        positive = ("lookback", "batch_size", "epochs", "stride")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise FinetuneConfigError(f"FinetuneConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("horizon", "patience"):
            if int(getattr(self, name)) < 0:
                raise FinetuneConfigError(f"FinetuneConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("steps_per_epoch", "max_steps", "max_val_windows"):
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
        if self.val_start is not None:
            try:
                pd.Timestamp(self.val_start)
            except (TypeError, ValueError) as exc:
                raise FinetuneConfigError(
                    f"FinetuneConfig.val_start {self.val_start!r} is not a time: {exc}"
                ) from exc
        self.betas = (float(self.betas[0]), float(self.betas[1]))


# ----------------------------------------------------------------------------------------------------
# data: series, windows, split


def tokenizer_loss(tokenizer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference tokenizer loss ((MSE(z_pre,x) + MSE(z,x) + bsq) / 2) and the validation metric MSE(z,x)."""
    (z_pre, z), bsq_loss, _, _ = tokenizer(x)
    recon = F.mse_loss(z, x)
    return (F.mse_loss(z_pre, x) + recon + bsq_loss) / 2, recon


def predictor_loss(
    model: nn.Module, tokenizer: nn.Module, x: torch.Tensor, stamp: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token loss (ce_s1 + ce_s2) / 2 over all positions, s2 conditioned on the true next s1.

    Teacher forcing (``s1_targets`` = the true next s1) matches inference, where s2 is drawn given the s1
    that was actually chosen for that step; it also makes the loss deterministic (no multinomial draw),
    so validation losses are comparable across epochs and a seed fixes the whole run.
    """
    with torch.no_grad():
        s1, s2 = tokenizer.encode(x, half=True)
    s1_logits, s2_logits = model(
        s1[:, :-1], s2[:, :-1], stamp[:, :-1], use_teacher_forcing=True, s1_targets=s1[:, 1:]
    )
    loss, _, _ = model.head.compute_loss(s1_logits, s2_logits, s1[:, 1:], s2[:, 1:])
    return loss, loss


@contextmanager
def _causal_eval(module: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) that keeps the predictor's s2 cross-attention causal, as in training.

    In plain eval mode the dependency layer attends to all positions, so s2 at step t would see the
    context of later steps: a validation loss computed that way would leak the future.
    """
    was_training = module.training
    module.eval()
    dep = getattr(module, "dep_layer", None)
    if dep is not None:
        dep.train()
    try:
        yield
    finally:
        module.train(was_training)


# ----------------------------------------------------------------------------------------------------
# the loop


@dataclass
class TrainResult:
    """Outcome of one run: the trained module (best weights), per-epoch metrics and the training record."""

    kind: str  # "tokenizer" or "predictor"
    module: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float | None
    stopped_early: bool
    record: dict[str, Any] = field(repr=False)

    @property
    def train_losses(self) -> list[float]:
        """Mean training loss per epoch."""
        return [h["train_loss"] for h in self.history]

    def save(self, directory: str | Path) -> Path:
        """``save_pretrained`` the module into ``directory`` and write ``training_record.json`` beside it."""
        directory = Path(directory)
        self.module.save_pretrained(directory)
        (directory / RECORD_FILE).write_text(json.dumps(self.record, indent=2, sort_keys=True) + "\n")
        return directory


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1 over ``warmup`` steps, then cosine down to ``min_ratio``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _batches(n: int, batch: int, steps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``steps`` batches of indices into n windows, drawn without replacement until a pass is used up."""
    order = np.empty(0, dtype=np.int64)
    for _ in range(steps):
        while len(order) < batch:
            order = np.concatenate([order, rng.permutation(n)])
        yield order[:batch]
        order = order[batch:]


def _versions() -> dict[str, str]:
    """Versions of the software that produced a checkpoint."""
    from importlib import metadata

    try:
        own = metadata.version("kronos-bt")
    except metadata.PackageNotFoundError:
        own = "unknown"
    return {
        "kronos_bt": own,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


def _module_config(module: nn.Module) -> dict[str, Any] | None:
    """The module's config as a dict, when it carries a dataclass ``config``."""
    config = getattr(module, "config", None)
    try:
        return asdict(config) if config is not None else None
    except TypeError:
        return None


def _evaluate(
    module: nn.Module,
    loss_fn: Callable,
    series: Sequence[Series],
    split: WindowSplit,
    cfg: FinetuneConfig,
    device: torch.device,
) -> float | None:
    """Mean validation metric over all validation windows (weighted by batch size), without gradients."""
    if len(split.val) == 0:
        return None
    total, count = 0.0, 0
    with _causal_eval(module), torch.no_grad():
        for start in range(0, len(split.val), cfg.batch_size):
            x, stamp = make_batch(series, split.val[start : start + cfg.batch_size], split.window, cfg)
            _, metric = loss_fn(x.to(device), stamp.to(device))
            total += float(metric) * len(x)
            count += len(x)
    return total / count


def _fit(
    kind: str,
    module: nn.Module,
    loss_fn: Callable,
    series: list[Series],
    window: int,
    cfg: FinetuneConfig,
    extra_record: dict[str, Any] | None = None,
) -> TrainResult:
    """Shared loop: AdamW + warm-up/cosine, grad clipping, per-epoch validation, early stopping."""
    from tqdm.auto import tqdm

    split = split_windows(series, window, cfg)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    module.to(device)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    per_epoch = cfg.steps_per_epoch or max(1, len(split.train) // cfg.batch_size)
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(per_epoch * cfg.epochs, cfg.max_steps)
    warmup = int(cfg.warmup if cfg.warmup >= 1 else round(cfg.warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, cfg.min_lr_ratio)
    )
    history: list[dict[str, float]] = []
    best_val, best_epoch, best_state, bad_epochs, step = math.inf, 0, None, 0, 0
    stopped_early, started = False, time.perf_counter()
    bar = tqdm(total=total, desc=f"train {kind}", disable=not cfg.verbose, leave=False)
    for epoch in range(1, cfg.epochs + 1):
        module.train()
        losses = []
        for idx in _batches(len(split.train), cfg.batch_size, min(per_epoch, total - step), rng):
            x, stamp = make_batch(series, split.train[idx], window, cfg)
            loss, _ = loss_fn(x.to(device), stamp.to(device))
            if not torch.isfinite(loss):
                raise KronosError(f"{kind} training diverged: loss {float(loss)} at step {step}; lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            schedule.step()
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", best_val=f"{best_val:.4f}", refresh=False)
        val = _evaluate(module, loss_fn, series, split, cfg, device)
        history.append(
            {
                "epoch": epoch,
                "step": step,
                "train_loss": float(np.mean(losses)),
                "val_loss": val,
                "lr": schedule.get_last_lr()[0],
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
        if val is None or val < best_val:
            best_val, best_epoch, bad_epochs = (val if val is not None else best_val), epoch, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            bad_epochs += 1
        if step >= total or (bad_epochs and bad_epochs >= cfg.patience):
            stopped_early = step < total
            break
    bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    best = None if math.isinf(best_val) else best_val
    record = {
        "kind": kind,
        "config": asdict(cfg),
        "model_config": _module_config(module),
        "seed": cfg.seed,
        "device": str(device),
        "window": window,
        "data_fingerprint": data_fingerprint(series),
        "data": date_ranges(series, split),
        "cutoff": None if split.cutoff is None else str(split.cutoff),
        "train_windows": len(split.train),
        "val_windows": len(split.val),
        "steps": step,
        "epochs": history,
        "best_epoch": best_epoch,
        "best_val_loss": best,
        "stopped_early": stopped_early,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "versions": _versions(),
        "val_metric": "mse(z, x)" if kind == "tokenizer" else "(ce_s1 + ce_s2) / 2, teacher-forced s2",
        **(extra_record or {}),
    }
    return TrainResult(kind, module, history, best_epoch, best, stopped_early, record)


# ----------------------------------------------------------------------------------------------------
# public entry points


def build_tokenizer(config: KronosTokenizerConfig, *, seed: int = 0) -> KronosTokenizer:
    """A freshly initialised tokenizer (seeded), for training from scratch through the same API."""
    torch.manual_seed(seed)
    return KronosTokenizer(**config_to_dict(config))


def build_predictor(config: KronosConfig, *, seed: int = 0) -> Kronos:
    """A freshly initialised predictor (seeded, reference init), for training from scratch."""
    torch.manual_seed(seed)
    return Kronos(**config_to_dict(config))


def finetune_tokenizer(tokenizer: nn.Module, frames: Any, cfg: FinetuneConfig | None = None) -> TrainResult:
    """Train a :class:`KronosTokenizer` on windows of ``lookback + horizon`` bars (reference loss, 6.2)."""
    cfg = cfg or FinetuneConfig()
    series = load_series(frames)

    def loss_fn(x: torch.Tensor, stamp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return tokenizer_loss(tokenizer, x)

    return _fit("tokenizer", tokenizer, loss_fn, series, cfg.lookback + cfg.horizon, cfg)


def finetune_predictor(
    model: nn.Module, tokenizer: nn.Module, frames: Any, cfg: FinetuneConfig | None = None
) -> TrainResult:
    """Train a :class:`Kronos` predictor on ``lookback + horizon + 1`` bar windows with the tokenizer frozen."""
    cfg = cfg or FinetuneConfig()
    _check_pair(model, tokenizer)
    series = load_series(frames)
    device = resolve_device(cfg.device)
    flags = [p.requires_grad for p in tokenizer.parameters()]
    tokenizer.to(device).eval().requires_grad_(False)

    def loss_fn(x: torch.Tensor, stamp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return predictor_loss(model, tokenizer, x, stamp)

    try:
        extra = {"tokenizer_config": _module_config(tokenizer)}
        return _fit("predictor", model, loss_fn, series, cfg.lookback + cfg.horizon + 1, cfg, extra)
    finally:
        for p, flag in zip(tokenizer.parameters(), flags):
            p.requires_grad_(flag)


@dataclass
class PairResult:
    """Outcome of :func:`finetune`: both modules, the tokenizer run (None when kept frozen), the predictor run."""

    model: nn.Module
    tokenizer: nn.Module
    tokenizer_result: TrainResult | None
    predictor_result: TrainResult

    def save(self, directory: str | Path) -> Path:
        """Save as ``directory/tokenizer`` and ``directory/predictor``, each with its training record."""
        directory = Path(directory)
        if self.tokenizer_result is not None:
            self.tokenizer_result.save(directory / "tokenizer")
        else:
            self.tokenizer.save_pretrained(directory / "tokenizer")
        self.predictor_result.save(directory / "predictor")
        return directory


def finetune(
    predictor_or_pair: Any,
    frames: Any,
    cfg: FinetuneConfig | None = None,
    *,
    tokenizer_cfg: FinetuneConfig | None = None,
    train_tokenizer: bool = True,
) -> PairResult:
    """Fine-tune a :class:`KronosPredictor` (or a ``(model, tokenizer)`` pair): tokenizer first, then predictor.

    ``tokenizer_cfg`` defaults to ``cfg``; with ``train_tokenizer=False`` the tokenizer stays as given.
    The modules are updated in place and left in eval mode, so a predictor wrapper keeps working with the
    new weights; with a wrapper and ``device=None`` training runs on the wrapper's device.
    """
    cfg = cfg or FinetuneConfig()
    if isinstance(predictor_or_pair, tuple) and len(predictor_or_pair) == 2:
        model, tokenizer = predictor_or_pair
    elif hasattr(predictor_or_pair, "model") and hasattr(predictor_or_pair, "tokenizer"):
        model, tokenizer = predictor_or_pair.model, predictor_or_pair.tokenizer
        wrapper_device = getattr(predictor_or_pair, "device", None)
        if wrapper_device is not None:  # train where the wrapper runs, so it keeps working afterwards
            cfg = replace(cfg, device=cfg.device or str(wrapper_device))
            tokenizer_cfg = tokenizer_cfg and replace(
                tokenizer_cfg, device=tokenizer_cfg.device or str(wrapper_device)
            )
    else:
        raise FinetuneConfigError(
            f"finetune needs a KronosPredictor or a (model, tokenizer) pair, got {type(predictor_or_pair).__name__}"
        )
    _check_pair(model, tokenizer)
    tok_result = finetune_tokenizer(tokenizer, frames, tokenizer_cfg or cfg) if train_tokenizer else None
    pred_result = finetune_predictor(model, tokenizer, frames, cfg)
    if not isinstance(predictor_or_pair, tuple):  # the wrapper's cached weight fingerprint is stale now
        vars(predictor_or_pair).pop("fingerprint", None)
    return PairResult(model, tokenizer, tok_result, pred_result)


def _check_pair(model: nn.Module, tokenizer: nn.Module) -> None:
    """Raise if the predictor's vocabulary does not match the tokenizer's code size."""
    mc, tc = getattr(model, "config", None), getattr(tokenizer, "config", None)
    if mc is None or tc is None:
        return
    if (mc.s1_bits, mc.s2_bits) != (tc.s1_bits, tc.s2_bits):
        raise CheckpointError(
            f"predictor s1/s2 bits ({mc.s1_bits}, {mc.s2_bits}) do not match the tokenizer's "
            f"({tc.s1_bits}, {tc.s2_bits}); pair the predictor with the tokenizer it was trained with"
        )
