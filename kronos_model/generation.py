"""Autoregressive generation of future tokens, with and without a KV cache.

Both paths reproduce the reference loop (KRONOS_SPEC 7.4): the whole history is tokenised, the predictor
sees the last ``min(n, max_context)`` tokens with RoPE positions restarting at 0 in that window, the stamp
of each *input* token is fed, and the final decode runs on the last ``max_context`` tokens.

* ``use_cache=False`` recomputes the window at every step for every sample (the reference behaviour).
* ``use_cache=True`` encodes and prefills each window once; its sample paths all read that prefill's
  keys/values (stored once per window, not per sample), and only the tokens they generate are cached per
  sample row. Once a window would slide past ``max_context`` every position changes, so that step is
  recomputed, exactly as the reference does. The cached steps are one fixed-shape call
  (:func:`kronos_model.decoding.decode_cached`) that a GPU can replay as a CUDA graph.

Windows of unequal length are left-padded; per-row RoPE positions and key masks keep each row's
numbers those of its own unpadded window.
"""

from __future__ import annotations

import torch

from .cuda_graph import captured_decode
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

    cuda_graph : replay the cached decode as a recorded CUDA graph (:mod:`kronos_model.cuda_graph`); off
        CUDA the same static-buffer path runs eagerly. Unseeded draws then come from ``sampling.generator``
        as uniforms, so they differ from the eager path's ``torch.multinomial`` stream.
    record : optional dict that receives side outputs: the generated ids ``gen_s1``/``gen_s2`` [N, pred_len]
        and ``history_recon`` [B, d_in], the decoder's reconstruction of each window's last history bar.

    Returns
    -------
    [B, sample_count, pred_len, d_in] decoded paths in normalised space (not averaged).
    """
    batch, width = x.shape[:2]
    device = x.device
    lengths = lengths.cpu()
    x = x.clamp(-clip, clip)
    n_rows = batch * sample_count
    if sampling.uniforms is not None:
        sampling.uniforms = sampling.uniforms.to(device)
    hist = _Window(lengths if use_cache else lengths.repeat_interleave(sample_count), width, width, device)
    if use_cache:
        s1_hist, s2_hist = tokenizer.encode(x, half=True, positions=hist.positions, key_mask=hist.key_mask)
    else:  # the reference tokenises every sample's copy of the history
        x_rep = x.repeat_interleave(sample_count, 0)
        s1_hist, s2_hist = tokenizer.encode(
            x_rep, half=True, positions=hist.positions, key_mask=hist.key_mask
        )
        s1_hist, s2_hist = s1_hist[::sample_count], s2_hist[::sample_count]

    total = width + pred_len
    s1_buf = torch.zeros(n_rows, total, dtype=torch.long, device=device)
    s2_buf = torch.zeros_like(s1_buf)
    s1_buf[:, :width] = s1_hist.repeat_interleave(sample_count, 0)
    s2_buf[:, :width] = s2_hist.repeat_interleave(sample_count, 0)
    stamp_buf = stamps.repeat_interleave(sample_count, 0)
    row_lengths = lengths.repeat_interleave(sample_count)

    # steps whose window stays inside max_context share one prefill; later ones recompute (the reference)
    n_cached = min(pred_len, max(0, max_context - width + 1)) if use_cache else 0
    if n_cached:
        positions, key_mask = left_pad_positions(row_lengths + pred_len, total)
        state = DecodeState(
            s1_buf,
            s2_buf,
            stamp_buf,
            positions.to(device),
            None if key_mask is None else key_mask.to(device),
            width,
        )
        _decode_cached(model, state, sampling, sample_count, n_cached, cuda_graph)
    for step in range(n_cached, pred_len):
        win = _Window(row_lengths + step, width + step, max_context, device)
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

    final = _Window(row_lengths + pred_len, total, max_context, device)
    if use_cache:
        decoded, history_recon = _decode_shared_history(tokenizer, s1_buf, s2_buf, final, width, sample_count)
    else:
        cols = slice(final.start, final.end)
        decoded = tokenizer.decode(
            (s1_buf[:, cols], s2_buf[:, cols]),
            half=True,
            positions=None if final.key_mask is None else final.positions,
            key_mask=final.key_mask,
        )
        history_recon = decoded[::sample_count, -pred_len - 1] if final.width > pred_len else None
    if record is not None:
        record["gen_s1"], record["gen_s2"] = s1_buf[:, width:].clone(), s2_buf[:, width:].clone()
        record["history_recon"] = None if history_recon is None else history_recon.float()
    return decoded[:, -pred_len:].float().reshape(batch, sample_count, pred_len, -1)


def _decode_cached(
    model: Kronos, state: DecodeState, sampling: SamplingArgs, sample_count: int, steps: int, cuda_graph: bool
) -> None:
    """Run :func:`decode_cached` eagerly, or through the recorded graph of its signature."""
    if cuda_graph:
        rows, pred_len = state.s1.shape[0], state.s1.shape[1] - state.width
        if sampling.uniforms is None:  # a replay takes its draws as data
            gen = sampling.generator
            draws = torch.rand(
                rows, pred_len, 2, dtype=torch.float64, generator=gen, device=gen.device if gen else "cpu"
            )
            sampling.uniforms = draws.to(state.s1.device)
        decoder = captured_decode(model, state, sampling, sample_count, steps, capture=state.s1.is_cuda)
        if decoder is not None:
            decoder(state, sampling.uniforms)
            return
    decode_cached(model, state, sampling, sample_count, steps)


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
