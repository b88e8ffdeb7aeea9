"""Autoregressive generation of future tokens, with and without a KV cache.

Both paths reproduce the reference loop (KRONOS_SPEC 7.4): the whole history is tokenised, the predictor
sees the last ``min(n, max_context)`` tokens with RoPE positions restarting at 0 in that window, the stamp
of each *input* token is fed, and the final decode runs on the last ``max_context`` tokens.

* ``use_cache=False`` recomputes the window at every step for every sample (the reference behaviour).
* ``use_cache=True`` encodes and prefills each window once; its sample paths all read that prefill's
  keys/values (stored once per window, not per sample), and only the tokens they generate are cached per
  sample row. Once a window would slide past ``max_context`` every position changes, so that step is
  recomputed, exactly as the reference does.

Everything decided on the host (windows, RoPE positions, key masks) is planned before any device work
(:class:`_Plan`), so a fully cached call is pure device work that a GPU records once per shape and
replays as one CUDA graph (``cuda_graph=True``, :mod:`kronos_model.cuda_graph`).

Windows of unequal length are left-padded; per-row RoPE positions and key masks keep each row's
numbers those of its own unpadded window.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from .cuda_graph import recorded_call
from .decoding import DecodeState, SamplingArgs, decode_cached, sample_step
from .layers import left_pad_positions
from .tokenizer import KronosTokenizer
from .transformer import Kronos

__all__ = ["SamplingArgs", "generate"]


class _Window:
    """Which buffer columns each row's predictor window covers after ``n`` tokens per row.

    Bookkeeping runs on CPU tensors so that no step waits on the GPU; positions and mask are then moved.
    """

    def __init__(self, lengths: torch.Tensor, end: int, max_context: int, device: torch.device):
        sizes = lengths.clamp(max=max_context)  # [N] real tokens in each row's window
        self.width = int(sizes.max())
        self.end = end
        self.start = end - self.width
        positions, key_mask = left_pad_positions(sizes, self.width)
        self.positions = positions.to(device)
        self.key_mask = None if key_mask is None else key_mask.to(device)
        self.sliding = bool((lengths > max_context).any())


@dataclass
class _Plan:
    """The host-side decisions of one call: which columns each window covers at each stage, on the device.

    ``n_cached`` steps share one prefill (their window stays inside ``max_context``); ``steps`` holds the
    windows of the later, recomputed ones; ``positions``/``key_mask`` [N, W + P] cover every buffer column
    for the cached steps (see :class:`kronos_model.decoding.DecodeState`).
    """

    width: int
    pred_len: int
    sample_count: int
    use_cache: bool
    hist: _Window
    final: _Window
    n_cached: int = 0
    positions: torch.Tensor | None = None
    key_mask: torch.Tensor | None = None
    steps: list[_Window] = field(default_factory=list)

    @classmethod
    def make(cls, lengths, width, pred_len, max_context, sample_count, use_cache, device) -> _Plan:
        rows = lengths.repeat_interleave(sample_count)
        hist = _Window(lengths if use_cache else rows, width, width, device)
        plan = cls(
            width,
            pred_len,
            sample_count,
            use_cache,
            hist,
            _Window(rows + pred_len, width + pred_len, max_context, device),
        )
        plan.n_cached = min(pred_len, max(0, max_context - width + 1)) if use_cache else 0
        if plan.n_cached:
            positions, key_mask = left_pad_positions(rows + pred_len, width + pred_len)
            plan.positions = positions.to(device)
            plan.key_mask = None if key_mask is None else key_mask.to(device)
        plan.steps = [
            _Window(rows + s, width + s, max_context, device) for s in range(plan.n_cached, pred_len)
        ]
        return plan

    @property
    def recordable(self) -> bool:
        """Fully cached: no recomputed step, so the whole call has fixed shapes."""
        return self.use_cache and self.n_cached == self.pred_len

    def tensors(self) -> dict[str, torch.Tensor]:
        """The plan's device tensors by name (the inputs of a recorded call besides x, stamps, draws)."""
        named = {
            "hist_positions": self.hist.positions,
            "hist_mask": self.hist.key_mask,
            "positions": self.positions,
            "key_mask": self.key_mask,
            "final_positions": self.final.positions,
            "final_mask": self.final.key_mask,
        }
        return {name: t for name, t in named.items() if t is not None}

    def with_tensors(self, named: dict[str, torch.Tensor]) -> _Plan:
        """A copy of this plan reading its tensors from ``named`` (the static buffers of a recording)."""
        plan, hist, final = copy.copy(self), copy.copy(self.hist), copy.copy(self.final)
        hist.positions, hist.key_mask = named["hist_positions"], named.get("hist_mask")
        final.positions, final.key_mask = named["final_positions"], named.get("final_mask")
        plan.hist, plan.final = hist, final
        plan.positions, plan.key_mask = named.get("positions"), named.get("key_mask")
        return plan


@torch.inference_mode()
def generate(
    tokenizer: KronosTokenizer,
    model: Kronos,
    x: torch.Tensor,
    lengths: torch.Tensor,
    stamps: torch.Tensor,
    pred_len: int,
    max_context: int,
    sample_count: int,
    sampling: SamplingArgs,
    *,
    clip: float = 5.0,
    use_cache: bool = True,
    cuda_graph: bool = False,
    record: dict | None = None,
) -> torch.Tensor:
    """Forecast normalised bars.

    Parameters
    ----------
    x : [B, L, d_in] normalised history, left-padded to the longest row.
    lengths : [B] real history rows per window.
    stamps : [B, L + pred_len, 5] calendar features of history (left-padded alike) then future bars.

    cuda_graph : run a fully cached call through the recording of its shapes (:mod:`kronos_model.cuda_graph`):
        a CUDA graph on a GPU, the same static buffers eagerly elsewhere. Unseeded draws then come from
        ``sampling.generator`` as uniforms, so they differ from the eager path's ``torch.multinomial`` stream.
    record : optional dict that receives side outputs: the generated ids ``gen_s1``/``gen_s2`` [N, pred_len]
        and ``history_recon`` [B, d_in], the decoder's reconstruction of each window's last history bar.

    Returns
    -------
    [B, sample_count, pred_len, d_in] decoded paths in normalised space (not averaged).
    """
    batch, width = x.shape[:2]
    plan = _Plan.make(lengths.cpu(), width, pred_len, max_context, sample_count, use_cache, x.device)
    x = x.clamp(-clip, clip)
    if sampling.uniforms is not None:
        sampling.uniforms = sampling.uniforms.to(x.device)
    if cuda_graph and plan.recordable:
        decoded, history_recon, gen_s1, gen_s2 = _forward_recorded(
            tokenizer, model, plan, x, stamps, sampling
        )
    else:
        decoded, history_recon, gen_s1, gen_s2 = _forward(tokenizer, model, plan, x, stamps, sampling)
    if record is not None:
        record["gen_s1"], record["gen_s2"] = gen_s1.clone(), gen_s2.clone()
        record["history_recon"] = None if history_recon is None else history_recon.float().clone()
    return decoded.float().reshape(batch, sample_count, pred_len, -1)


def _forward(tokenizer: KronosTokenizer, model: Kronos, plan: _Plan, x, stamps, sampling: SamplingArgs):
    """Device work of one call -> (decoded [N, P, d_in], history_recon [B, d_in] | None, gen_s1, gen_s2 [N, P])."""
    samples, width, pred_len = plan.sample_count, plan.width, plan.pred_len
    hist = plan.hist
    if plan.use_cache:
        s1_hist, s2_hist = tokenizer.encode(x, half=True, positions=hist.positions, key_mask=hist.key_mask)
    else:  # the reference tokenises every sample's copy of the history
        x_rep = x.repeat_interleave(samples, 0)
        s1_hist, s2_hist = tokenizer.encode(
            x_rep, half=True, positions=hist.positions, key_mask=hist.key_mask
        )
        s1_hist, s2_hist = s1_hist[::samples], s2_hist[::samples]

    s1_buf = torch.zeros(x.shape[0] * samples, width + pred_len, dtype=torch.long, device=x.device)
    s2_buf = torch.zeros_like(s1_buf)
    s1_buf[:, :width] = s1_hist.repeat_interleave(samples, 0)
    s2_buf[:, :width] = s2_hist.repeat_interleave(samples, 0)
    stamp_buf = stamps.repeat_interleave(samples, 0)
    if plan.n_cached:
        state = DecodeState(s1_buf, s2_buf, stamp_buf, plan.positions, plan.key_mask, width)
        decode_cached(model, state, sampling, samples, plan.n_cached)
    for step, win in zip(range(plan.n_cached, pred_len), plan.steps, strict=True):
        cols = slice(win.start, win.end)
        context = model.backbone(
            s1_buf[:, cols],
            s2_buf[:, cols],
            stamp_buf[:, cols],
            None if win.key_mask is None else win.positions,
            win.key_mask,
        )
        s1, s2 = sample_step(model, context, win.key_mask, None, sampling, step, full_context=context)
        s1_buf[:, width + step] = s1[:, 0]
        s2_buf[:, width + step] = s2[:, 0]

    final = plan.final
    if plan.use_cache:
        decoded, history_recon = _decode_shared_history(tokenizer, s1_buf, s2_buf, final, width, samples)
    else:
        cols = slice(final.start, final.end)
        decoded = tokenizer.decode(
            (s1_buf[:, cols], s2_buf[:, cols]),
            half=True,
            positions=None if final.key_mask is None else final.positions,
            key_mask=final.key_mask,
        )
        history_recon = decoded[::samples, -pred_len - 1] if final.width > pred_len else None
    return decoded[:, -pred_len:], history_recon, s1_buf[:, width:], s2_buf[:, width:]


def _forward_recorded(
    tokenizer: KronosTokenizer, model: Kronos, plan: _Plan, x, stamps, sampling: SamplingArgs
):
    """:func:`_forward` through the recording of this call's shapes; outputs are copies, safe to keep."""
    if sampling.uniforms is None:  # a replay takes its draws as data
        gen = sampling.generator
        rows = x.shape[0] * plan.sample_count
        draws = torch.rand(
            rows, plan.pred_len, 2, dtype=torch.float64, generator=gen, device=gen.device if gen else "cpu"
        )
        sampling.uniforms = draws.to(x.device)
    inputs = {"x": x, "stamps": stamps, "uniforms": sampling.uniforms, **plan.tensors()}
    T, top_k, top_p = sampling.T, sampling.top_k, sampling.top_p

    def run(**named):
        drawn = SamplingArgs(T, top_k, top_p, uniforms=named["uniforms"], sampler=sampling.sampler)
        return _forward(tokenizer, model, plan.with_tensors(named), named["x"], named["stamps"], drawn)

    key = (
        plan.pred_len,
        plan.sample_count,
        plan.final.width,
        float(T),
        int(top_k),
        float(top_p),
        id(sampling.sampler),
    )
    outputs = recorded_call(run, inputs, key, owner=model, modules=(tokenizer, model), capture=x.is_cuda)
    if outputs is None:  # this build could not record it: eager
        return _forward(tokenizer, model, plan, x, stamps, sampling)
    return tuple(None if out is None else out.clone() for out in outputs)


def _decode_shared_history(
    tokenizer: KronosTokenizer, s1_buf, s2_buf, final: _Window, width: int, sample_count: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode the final window, running its history part (identical across samples) once per window.

    The decoder is causal, so rows of the generated part see the history only through keys and values;
    those are computed for one copy of each window and shared by its sample paths. Also returns the
    reconstruction of each window's last history bar [B, d_in] (None when the window holds no history).
    """
    n_hist = width - final.start
    positions = None if final.key_mask is None else final.positions
    if n_hist <= 0:
        cols = slice(final.start, final.end)
        return tokenizer.decode(
            (s1_buf[:, cols], s2_buf[:, cols]), half=True, positions=positions, key_mask=final.key_mask
        ), None
    rows = slice(None, None, sample_count)
    hist, gen = slice(final.start, width), slice(width, final.end)
    cache = tokenizer.new_decoder_cache(final.width)
    history = tokenizer.decode(
        (s1_buf[rows, hist], s2_buf[rows, hist]),
        half=True,
        positions=final.positions[rows, :n_hist],
        key_mask=None if final.key_mask is None else final.key_mask[rows, :n_hist],
        cache=cache,
    )
    cache.share(sample_count)
    generated = tokenizer.decode(
        (s1_buf[:, gen], s2_buf[:, gen]),
        half=True,
        positions=final.positions[:, n_hist:],
        key_mask=final.key_mask,
        cache=cache,
    )
    return generated, history[:, -1]
