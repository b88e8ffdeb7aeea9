"""Token sampling: temperature, top-k, nucleus (top-p), then one draw per row.

The filtering reproduces the reference exactly (top-k wins over top-p; ties at the k-th logit survive;
the first token crossing top_p is kept). Draws come either from ``torch.multinomial`` (the reference's
RNG use) or, for per-window reproducibility, from caller-supplied uniforms by inverse CDF.
"""

from __future__ import annotations

import torch

from .errors import SamplingError


def check_sampling_args(
    T: float, top_k: int | None, top_p: float | None, sample_count: int = 1
) -> tuple[int, float]:
    """Validate sampling arguments; returns (top_k, top_p) with ``None`` meaning 'filter off'."""
    if not (isinstance(T, int | float) and T > 0):
        raise SamplingError(f"temperature T must be > 0, got {T!r} (use top_k=1 for greedy decoding)")
    top_k = 0 if top_k is None else top_k
    top_p = 1.0 if top_p is None else top_p
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise SamplingError(f"top_k must be an integer >= 0 (0 = off), got {top_k!r}")
    if not (isinstance(top_p, int | float) and 0.0 < top_p <= 1.0):
        raise SamplingError(f"top_p must lie in (0, 1], got {top_p!r}")
    if not isinstance(sample_count, int) or isinstance(sample_count, bool) or sample_count < 1:
        raise SamplingError(f"sample_count must be an integer >= 1, got {sample_count!r}")
    return top_k, float(top_p)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k (or, when top_k is 0, outside the nucleus) to -inf. logits [N, V]."""
    if top_k > 0:
        k = min(top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cumulative > top_p
        drop[..., 1:] = drop[..., :-1].clone()
        drop[..., 0] = False
        return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def sample_from_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw one id per row from logits [N, V] -> [N, 1] (int64).

    ``uniform`` [N] in [0, 1) makes each row's draw a pure function of its own logits and number, so a
    row's result does not depend on the other rows of the batch; otherwise ``torch.multinomial`` is used.
    """
    probs = torch.softmax(filter_logits(logits.float() / temperature, top_k, top_p), dim=-1)
    if uniform is None:
        return torch.multinomial(probs, num_samples=1, generator=generator)
    cdf = probs.double().cumsum(dim=-1)
    target = uniform.to(cdf.device, torch.float64)[:, None] * cdf[:, -1:]
    idx = torch.searchsorted(cdf, target, right=True)
    return idx.clamp_(max=probs.shape[-1] - 1)
