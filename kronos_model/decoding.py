"""One decode step of the predictor, shared by the eager loop and the captured (CUDA graph) loop.

Shapes: N = windows x sample_count rows, W the prompt width (longest window), P = pred_len.
:class:`DecodeState` holds everything a cached step reads or writes, as tensors of fixed shape, with
no host synchronisation, so a GPU can record a whole call once and replay it (:mod:`kronos_model.cuda_graph`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .sampling import sample_from_logits
from .transformer import Kronos


@dataclass
class SamplingArgs:
    """Temperature, filters, and the randomness source (uniforms [N, P, 2] or a generator)."""

    T: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    generator: torch.Generator | None = None
    uniforms: torch.Tensor | None = None
    sampler: Callable[..., torch.Tensor] | None = (
        None  # e.g. a compiled sample_from_logits (uniform draws only)
    )

    def draw(self, logits: torch.Tensor, step: int, which: int) -> torch.Tensor:
        if self.uniforms is None:
            return sample_from_logits(logits, self.T, self.top_k, self.top_p, generator=self.generator)
        sample = self.sampler or sample_from_logits
        return sample(logits, self.T, self.top_k, self.top_p, uniform=self.uniforms[:, step, which])


@dataclass
class DecodeState:
    """Buffers of one cached decode: token ids, stamps, per-column positions and key mask.

    ``positions`` [N, W + P] and ``key_mask`` [N, W + P] (None without padding) describe every buffer
    column at once: while no window slides past ``max_context``, step ``s`` reads column ``W + s - 1``
    and keys ``:W + s``, exactly what the per-step window would give.
    """

    s1: torch.Tensor  # [N, W + P] ids, history then generated
    s2: torch.Tensor
    stamps: torch.Tensor  # [N, W + P, 5]
    positions: torch.Tensor  # [N, W + P] RoPE position of each column in its row's window
    key_mask: torch.Tensor | None  # [N, W + P] True = real token
    width: int


def sample_step(
    model: Kronos,
    context_last: torch.Tensor,
    key_mask,
    dep_cache,
    sampling: SamplingArgs,
    step: int,
    full_context: torch.Tensor | None = None,
):
    """s1 from the last context row, then s2 conditioned on it; returns ids [N, 1] each."""
    s1 = sampling.draw(model.head(context_last[:, -1]), step, 0)
    sibling = model.embedding.emb_s1(s1)
    if dep_cache is None:
        x2 = model.dep_layer(sibling, full_context, key_mask)[:, -1]
    else:
        x2 = model.dep_layer(sibling, context_last, key_mask, dep_cache)[:, -1]
    s2 = sampling.draw(model.head.cond_forward(x2), step, 1)
    return s1, s2


def decode_cached(
    model: Kronos, state: DecodeState, sampling: SamplingArgs, sample_count: int, steps: int
) -> None:
    """Prefill each window once, share it across its ``sample_count`` rows, then generate ``steps`` tokens.

    Step 0 samples from the prefill's last context; step s > 0 first runs the token sampled at s - 1
    through the blocks at its column's position, appending its keys/values to the cache. Only device
    work happens here (no host sync), so the whole call can be recorded as one CUDA graph.
    """
    w = state.width
    rows, prompt = slice(None, None, sample_count), slice(None, w)
    cache = model.new_cache(state.s1.shape[1])  # W + P positions
    key_mask = None if state.key_mask is None else state.key_mask[rows, prompt]
    context = model.backbone(
        state.s1[rows, prompt],
        state.s2[rows, prompt],
        state.stamps[rows, prompt],
        state.positions[rows, prompt],
        key_mask,
        cache,
    )
    cache.dep.append(*model.dep_layer.cross_attn.project_kv(context))
    cache.share(sample_count)  # the sample rows read the prefill; only new tokens are per row
    context = context[:, -1:].repeat_interleave(sample_count, 0)
    for step in range(steps):
        keys = slice(None, w + step)
        key_mask = None if state.key_mask is None else state.key_mask[:, keys]
        if step > 0:
            new = slice(w + step - 1, w + step)
            context = model.backbone(
                state.s1[:, new],
                state.s2[:, new],
                state.stamps[:, new],
                state.positions[:, new],
                key_mask,
                cache,
            )
            cache.dep.append(*model.dep_layer.cross_attn.project_kv(context))
        s1, s2 = sample_step(model, context, key_mask, cache.dep, sampling, step)
        state.s1[:, w + step] = s1[:, 0]
        state.s2[:, w + step] = s2[:, 0]
