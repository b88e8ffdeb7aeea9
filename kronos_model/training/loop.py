"""The one training loop of kronos-bt: single process or DDP under torchrun, resumable.

Windows of ``lookback + horizon (+1)`` bars are cut from each OHLCV series and normalised with the
statistics of their own lookback rows only, exactly as at inference (no future bar ever enters the
mean/std). The train/validation split is a single cut-off time shared by all series. Losses follow the
reference (KRONOS_SPEC 6.1/6.2); the optimiser is AdamW with linear warm-up then cosine decay, gradient
clipping and early stopping on the validation loss, with the best weights restored at the end.

Every optimiser step draws one *global* batch of ``batch_size`` windows from a seeded sampler that all
ranks replay identically; the batch is cut into micro-batches, and micro-batch ``g`` runs on rank
``g % world_size`` (gradient accumulation covers the rest), with dropout seeded by ``(seed, step, g)``.
So the same global batch gives the same step whatever the number of processes, up to float summation
order, and a resumed run replays exactly what the killed one would have done.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, KronosError
from ..predictor import resolve_device
from . import checkpoint as ckpt
from . import distributed as dist_util
from .config import RUNTIME_FIELDS, FinetuneConfig
from .windows import Series, WindowSplit, data_fingerprint, date_ranges, make_batch, split_windows

RECORD_FILE = "training_record.json"


# ----------------------------------------------------------------------------------------------------
# losses


def tokenizer_loss(
    tokenizer: nn.Module, x: torch.Tensor, position_weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference tokenizer loss ((MSE(z_pre,x) + MSE(z,x) + bsq) / 2) and the validation metric MSE(z,x).

    ``position_weights`` [T] (mean 1) weight each bar's squared error in the training loss, e.g. to stress
    the last bars a forecast starts from; the returned metric stays the plain MSE.
    """
    (z_pre, z), bsq_loss, _, _ = tokenizer(x)
    recon = F.mse_loss(z.float(), x)
    if position_weights is None:
        return (F.mse_loss(z_pre.float(), x) + recon + bsq_loss) / 2, recon
    w = position_weights.to(x.device, torch.float32)[None, :, None]
    weighted = ((z_pre.float() - x) ** 2 * w).mean() + ((z.float() - x) ** 2 * w).mean()
    return (weighted + bsq_loss) / 2, recon


def predictor_loss(
    model: nn.Module, tokenizer: nn.Module, x: torch.Tensor, stamp: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token loss (ce_s1 + ce_s2) / 2 over all positions, s2 conditioned on the true next s1.

    Teacher forcing (``s1_targets`` = the true next s1) matches inference, where s2 is drawn given the s1
    that was actually chosen for that step; it also makes the loss deterministic (no multinomial draw),
    so validation losses are comparable across epochs and a seed fixes the whole run. ``model`` may be
    wrapped in DistributedDataParallel.
    """
    with torch.no_grad():
        s1, s2 = tokenizer.encode(x, half=True)
    s1_logits, s2_logits = model(
        s1[:, :-1], s2[:, :-1], stamp[:, :-1], use_teacher_forcing=True, s1_targets=s1[:, 1:]
    )
    head = getattr(model, "module", model).head
    loss, _, _ = head.compute_loss(s1_logits.float(), s2_logits.float(), s1[:, 1:], s2[:, 1:])
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
# result, schedule, sampler


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


class GlobalBatchSampler:
    """Distributed sampler over all series' windows: one seeded stream of global batches every rank replays.

    Batches are drawn without replacement until a pass is used up (the remainder carries into the next
    pass). Each rank then takes its own micro-batches of the global batch (see :func:`shard`), so the
    windows a step trains on never depend on the number of processes. ``state_dict`` is the position.
    """

    def __init__(self, n: int, batch: int, seed: int) -> None:
        self.n, self.batch = n, batch
        self.rng = np.random.default_rng(seed)
        self.order = np.empty(0, dtype=np.int64)

    def next(self) -> np.ndarray:
        """The next global batch of window indices."""
        while len(self.order) < self.batch:
            self.order = np.concatenate([self.order, self.rng.permutation(self.n)])
        out, self.order = self.order[: self.batch], self.order[self.batch :]
        return out

    def state_dict(self) -> dict[str, Any]:
        """Position in the stream (RNG state + the rest of the current pass), JSON-serialisable."""
        return {"rng": self.rng.bit_generator.state, "order": self.order.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(state["order"], dtype=np.int64)


def shard(batch: np.ndarray, micro: int, ctx: dist_util.DistContext) -> list[tuple[int, np.ndarray]]:
    """This rank's micro-batches of a global batch as ``(global micro-batch number, indices)``."""
    chunks = batch.reshape(-1, micro)
    return [(g, chunks[g]) for g in range(ctx.rank, len(chunks), ctx.world_size)]


def _micro_seed(seed: int, step: int, micro_index: int) -> int:
    """Dropout seed of one micro-batch: a function of (seed, step, micro-batch number) only."""
    return int(np.random.SeedSequence([seed, step, micro_index]).generate_state(1)[0])


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


def _autocast(device: torch.device, precision: str) -> Any:
    """bf16 autocast for ``precision="bf16"`` (or "auto" on CUDA); a no-op context otherwise."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def _on_step(kind: str, step: int) -> None:
    """Hook called after every optimiser step (tests replace it to interrupt a run)."""


# ----------------------------------------------------------------------------------------------------
# the loop


def _evaluate(
    module: nn.Module,
    loss_fn: Callable,
    series: Sequence[Series],
    split: WindowSplit,
    cfg: FinetuneConfig,
    device: torch.device,
) -> float | None:
    """Mean validation metric over all validation windows (sharded over ranks), without gradients."""
    if len(split.val) == 0:
        return None
    ctx = dist_util.current()
    micro, _ = cfg.micro_batches(ctx.world_size)
    rows = split.val[ctx.rank :: ctx.world_size]
    total, count = 0.0, 0
    with _causal_eval(module), torch.no_grad(), _autocast(device, cfg.precision):
        for start in range(0, len(rows), micro):
            x, stamp = make_batch(series, rows[start : start + micro], split.window, cfg)
            _, metric = loss_fn(module, x.to(device), stamp.to(device))
            total += float(metric) * len(x)
            count += len(x)
    total, count = dist_util.all_reduce_sum([total, float(count)], ctx)
    return total / count


@dataclass
class _State:
    """Everything that changes during a run and goes into a checkpoint."""

    step: int = 0
    epoch: int = 1
    epoch_losses: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    epoch_done: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    seconds: float = 0.0


def _resume_key(cfg: FinetuneConfig, kind: str, fingerprint: str) -> dict[str, Any]:
    """What a resumed run must share with the checkpoint: stage, data and every training setting."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in RUNTIME_FIELDS}
    return json.loads(json.dumps({"kind": kind, "data": fingerprint, "config": settings}))


def _save_checkpoint(
    cfg: FinetuneConfig,
    kind: str,
    key: dict[str, Any],
    module: nn.Module,
    optimizer: Any,
    schedule: Any,
    sampler: GlobalBatchSampler,
    st: _State,
    ctx: dist_util.DistContext,
) -> None:
    """Rank 0 writes the checkpoint atomically; every rank waits for it (a barrier)."""
    if ctx.is_main:
        tensors: dict[str, Any] = {
            "model": module.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
        }
        if st.best_state is not None:
            tensors["best"] = st.best_state
        meta = {
            "resume_key": key,
            "scheduler": schedule.state_dict(),
            "sampler": sampler.state_dict(),
            "world_size": ctx.world_size,
            **{k: v for k, v in asdict(st).items() if k != "best_state"},
        }
        ckpt.save(cfg.checkpoint_dir, kind, st.step, tensors, meta, cfg.keep_checkpoints)  # type: ignore[arg-type]
    dist_util.barrier(ctx)


def _load_checkpoint(
    cfg: FinetuneConfig,
    kind: str,
    key: dict[str, Any],
    module: nn.Module,
    optimizer: Any,
    schedule: Any,
    sampler: GlobalBatchSampler,
) -> _State | None:
    """Restore the newest checkpoint of this stage (every rank reads it), or None when there is none."""
    path = ckpt.latest(cfg.checkpoint_dir, kind)  # type: ignore[arg-type]
    if path is None:
        return None
    tensors, meta = ckpt.load(path)
    if meta["resume_key"] != key:
        raise CheckpointError(
            f"checkpoint {path} was written by a run with other data or settings; resume with the same "
            "config and data, or point checkpoint_dir at a new folder"
        )
    module.load_state_dict(tensors["model"])
    optimizer.load_state_dict(tensors["optimizer"])
    schedule.load_state_dict(meta["scheduler"])
    sampler.load_state_dict(meta["sampler"])
    torch.set_rng_state(tensors["rng"]["torch"])
    fields_ = {k: meta[k] for k in asdict(_State()) if k in meta and k != "best_state"}
    return _State(**fields_, best_state=tensors["best"])


def _train_step(
    sampler: GlobalBatchSampler,
    micro: int,
    ctx: dist_util.DistContext,
    cfg: FinetuneConfig,
    st: _State,
    series: list[Series],
    split: WindowSplit,
    window: int,
    wrapped: nn.Module,
    loss_fn: Callable,
    device: torch.device,
) -> float:
    """Forward/backward of this rank's micro-batches of the next global batch; the global mean loss."""
    mine = shard(sampler.next(), micro, ctx)
    step_loss = 0.0
    for j, (g, idx) in enumerate(mine):
        torch.manual_seed(_micro_seed(cfg.seed, st.step, g))
        x, stamp = make_batch(series, split.train[idx], window, cfg)
        sync = j == len(mine) - 1 or not ctx.enabled
        with nullcontext() if sync else wrapped.no_sync(), _autocast(device, cfg.precision):
            loss, _ = loss_fn(wrapped, x.to(device), stamp.to(device))
            # mean over the global batch; DDP averages gradients over ranks, so scale back up
            (loss * (len(idx) * ctx.world_size / cfg.batch_size)).backward()
        step_loss += loss.item() * len(idx) / cfg.batch_size
    (step_loss,) = dist_util.all_reduce_sum([step_loss], ctx)
    return step_loss


def _training_record(
    kind: str,
    module: nn.Module,
    cfg: FinetuneConfig,
    series: list[Series],
    split: Any,
    st: _State,
    best: float | None,
    run: dict[str, Any],
    extra_record: dict[str, Any] | None,
) -> dict[str, Any]:
    """``training_record.json``: config, data fingerprint and ranges, every step's loss, the epochs, the run."""
    return {
        "kind": kind,
        "config": asdict(cfg),
        "model_config": _module_config(module),
        "seed": cfg.seed,
        "device": run["device"],
        "world_size": run["world_size"],
        "micro_batch_size": run["micro_batch_size"],
        "accumulation_steps": run["accumulation_steps"],
        "resumed_at_step": run["resumed_at_step"],
        "window": run["window"],
        "data_fingerprint": data_fingerprint(series),
        "data": date_ranges(series, split),
        "cutoff": None if split.cutoff is None else str(split.cutoff),
        "train_windows": len(split.train),
        "val_windows": len(split.val),
        "steps": st.step,
        "epochs": st.history,
        "step_losses": st.step_losses,  # global-batch mean loss of every optimiser step
        "best_epoch": st.best_epoch,
        "best_val_loss": best,
        "stopped_early": run["stopped_early"],
        "wall_seconds": run["wall_seconds"],
        "versions": _versions(),
        "val_metric": "mse(z, x)" if kind == "tokenizer" else "(ce_s1 + ce_s2) / 2, teacher-forced s2",
        **(extra_record or {}),
    }


def _fit(
    kind: str,
    module: nn.Module,
    loss_fn: Callable,
    series: list[Series],
    window: int,
    cfg: FinetuneConfig,
    extra_record: dict[str, Any] | None = None,
) -> TrainResult:
    """Shared loop: AdamW + warm-up/cosine, grad clipping, per-epoch validation, early stopping, DDP, resume."""
    from tqdm.auto import tqdm

    ctx = dist_util.current()
    micro, accum = cfg.micro_batches(ctx.world_size)
    split = split_windows(series, window, cfg)
    device = resolve_device(dist_util.device_for(ctx, cfg.device))
    torch.manual_seed(cfg.seed)
    module.to(device)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    per_epoch = cfg.steps_per_epoch or max(1, len(split.train) // cfg.batch_size)
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(per_epoch * cfg.epochs, cfg.max_steps)
    warmup = int(cfg.warmup if cfg.warmup >= 1 else round(cfg.warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, cfg.min_lr_ratio)
    )
    sampler = GlobalBatchSampler(len(split.train), cfg.batch_size, cfg.seed)
    key = _resume_key(cfg, kind, data_fingerprint(series))
    st = (cfg.resume and _load_checkpoint(cfg, kind, key, module, optimizer, schedule, sampler)) or _State()
    resumed_at = st.step
    wrapped: nn.Module = module
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        wrapped = DistributedDataParallel(module, device_ids=ids)
    started = time.perf_counter() - st.seconds
    bar = tqdm(
        total=total,
        initial=st.step,
        desc=f"train {kind}",
        disable=not (cfg.verbose and ctx.is_main),
        leave=False,
    )
    stopped_early = False

    def finished() -> bool:
        return st.step >= total or bool(st.bad_epochs and st.bad_epochs >= cfg.patience)

    while st.epoch <= cfg.epochs and not (st.epoch_done and finished()):
        if st.epoch_done:
            st.epoch, st.epoch_losses, st.epoch_done = st.epoch + 1, [], False
            if st.epoch > cfg.epochs:
                break
        module.train()
        epoch_start = st.step - len(st.epoch_losses)
        for _ in range(min(per_epoch, total - epoch_start) - len(st.epoch_losses)):
            optimizer.zero_grad(set_to_none=True)
            with dist_util.collective_errors(ctx):
                step_loss = _train_step(
                    sampler, micro, ctx, cfg, st, series, split, window, wrapped, loss_fn, device
                )
            if not math.isfinite(step_loss):
                raise KronosError(f"{kind} training diverged: loss {step_loss} at step {st.step}; lower lr")
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            schedule.step()
            st.step += 1
            st.epoch_losses.append(step_loss)
            st.step_losses.append(step_loss)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}", best_val=f"{st.best_val:.4f}", refresh=False)
            if cfg.checkpoint_dir and cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0:
                st.seconds = time.perf_counter() - started
                _save_checkpoint(cfg, kind, key, module, optimizer, schedule, sampler, st, ctx)
            _on_step(kind, st.step)
        val = _evaluate(module, loss_fn, series, split, cfg, device)
        st.history.append(
            {
                "epoch": st.epoch,
                "step": st.step,
                "train_loss": float(np.mean(st.epoch_losses)),
                "val_loss": val,
                "lr": schedule.get_last_lr()[0],
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
        if val is None or val < st.best_val:
            st.best_val, st.best_epoch, st.bad_epochs = (val if val is not None else st.best_val), st.epoch, 0
            st.best_state = copy.deepcopy(module.state_dict())
        else:
            st.bad_epochs += 1
        st.epoch_done = True
        if cfg.checkpoint_dir:
            st.seconds = time.perf_counter() - started
            _save_checkpoint(cfg, kind, key, module, optimizer, schedule, sampler, st, ctx)
    stopped_early = st.step < total
    bar.close()
    if st.best_state is not None:
        module.load_state_dict(st.best_state)
    module.eval()
    best = None if math.isinf(st.best_val) else st.best_val
    run = {"device": str(device), "world_size": ctx.world_size, "micro_batch_size": micro,
           "accumulation_steps": accum, "resumed_at_step": resumed_at or None, "window": window,
           "stopped_early": stopped_early, "wall_seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
    record = _training_record(kind, module, cfg, series, split, st, best, run, extra_record)
    return TrainResult(kind, module, st.history, st.best_epoch, best, stopped_early, record)
