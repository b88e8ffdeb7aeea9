"""torch.distributed plumbing for fine-tuning: process-group start/stop, rank info, collective helpers.

The trainer never starts a process group itself: ``kronos-bt finetune`` does (under ``torchrun``) after
the config and the data have been validated, and the loop reads the group that is running. Without one,
everything below degrades to a single process (rank 0 of 1).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import DistributedTrainingError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job: rank, world size and local rank (0 / 1 / 0 without a group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when there is more than one process to talk to."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and draws progress bars."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set up a multi-process environment for this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def current() -> DistContext:
    """The running process group's view of this process, or a single-process context."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        )
    return DistContext()


def backend_for(device: str | None) -> str:
    """``nccl`` when this job trains on CUDA GPUs, ``gloo`` otherwise (CPU)."""
    wants_cuda = device is None or str(device).startswith("cuda")
    return "nccl" if wants_cuda and torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def init(device: str | None, timeout_s: float) -> DistContext:
    """Join the torchrun job (env:// rendezvous) with a collective timeout, so a lost peer ends every rank."""
    if not launched_by_torchrun():
        return current()
    if not dist.is_initialized():
        backend = backend_for(device)
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=float(timeout_s)))
    return current()


def device_for(ctx: DistContext, device: str | None) -> str | None:
    """This rank's device: ``cuda:<local rank>`` for CUDA jobs, the given device otherwise."""
    if ctx.enabled and backend_for(device) == "nccl":
        return f"cuda:{ctx.local_rank}"
    return device


def shutdown() -> None:
    """Leave the process group (a no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum float64 values over all ranks; a dead or stuck peer raises :class:`DistributedTrainingError`."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    try:
        dist.all_reduce(tensor)
    except Exception as exc:  # noqa: BLE001 - gloo/nccl raise RuntimeError or DistBackendError subclasses
        raise peer_lost(ctx, exc) from exc
    return tensor.cpu().tolist()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (bounded by the group's timeout)."""
    if not ctx.enabled:
        return
    try:
        dist.barrier()
    except Exception as exc:  # noqa: BLE001 - see all_reduce_sum
        raise peer_lost(ctx, exc) from exc


_COMM_WORDS = ("gloo", "nccl", "connection", "timed out", "timeout", "socket", "broken pipe", "peer")


@contextmanager
def collective_errors(ctx: DistContext) -> Iterator[None]:
    """Turn a communication failure inside DDP's own all-reduce into :class:`DistributedTrainingError`."""
    try:
        yield
    except DistributedTrainingError:
        raise
    except RuntimeError as exc:
        backend_error = getattr(dist, "DistBackendError", ())
        if ctx.enabled and (
            isinstance(exc, backend_error) or any(w in str(exc).lower() for w in _COMM_WORDS)
        ):
            raise peer_lost(ctx, exc) from exc
        raise


def peer_lost(ctx: DistContext, exc: BaseException) -> DistributedTrainingError:
    """The one-line error every surviving rank raises when a collective fails."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DistributedTrainingError(
        f"rank {ctx.rank}/{ctx.world_size}: another training process died or stopped answering ({first[:200]}); "
        "stopping this rank too. Fix the failed rank's error and rerun with --resume to continue"
    )
