"""Opt-in ``torch.compile`` of the elementwise math (RMSNorm, RoPE, SwiGLU, sampling): fewer GPU kernels per step.

A decode step of a small batch is hundreds of tiny kernels, each costing a few microseconds whatever its
size. Compiling these three pure functions fuses their elementwise chains (about a third of a block's
kernels). Results match the eager functions to float rounding, not bit for bit, so it is off by default:
``KronosPredictor(compile=True)``. Works with the CUDA-graph decode (compilation happens in its warm-up).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from torch import nn

from .layers import FeedForward, RMSNorm, RotaryEmbedding, apply_rope, rms_norm, swiglu
from .sampling import sample_from_logits


@cache
def _compiled(fn: Any, backend: str) -> Any:
    return torch.compile(fn, backend=backend, dynamic=None)


def fuse_elementwise(*modules: nn.Module, backend: str = "inductor") -> None:
    """Route every RMSNorm, RoPE and SwiGLU inside ``modules`` through one compiled function each."""
    for root in modules:
        for module in root.modules():
            if isinstance(module, RMSNorm):
                module.norm_fn = _compiled(rms_norm, backend)
            elif isinstance(module, RotaryEmbedding):
                module.rope_fn = _compiled(apply_rope, backend)
            elif isinstance(module, FeedForward):
                module.ffn_fn = _compiled(swiglu, backend)


def fused_sampler(backend: str = "inductor") -> Any:
    """``sample_from_logits`` compiled (filters, softmax and the inverse-CDF draw fused); for uniform draws."""
    return _compiled(sample_from_logits, backend)
