"""Record a batch's cached decode (prefill + every generated token) once as a CUDA graph, then replay it.

On a GPU a small batch is bound by kernel launches: each decode step issues ~100 small kernels from
Python. For a fixed signature (rows, prompt width, pred_len, sampling arguments, padding, dtype) every
shape in :func:`kronos_model.decoding.decode_cached` is fixed, so the first batch with that signature
records it into a ``torch.cuda.CUDAGraph`` over static buffers; later batches copy their inputs into
those buffers and replay the whole decode with one launch. Off CUDA (``capture=False``) the same object
runs the function eagerly on its buffers, which is how its shape logic is tested without a GPU.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import torch

from .decoding import DecodeState, SamplingArgs, decode_cached
from .transformer import Kronos

MAX_GRAPHS = 4  # recorded signatures kept per model (each holds its own buffers and memory pool)


class CapturedDecode:
    """Static buffers + a recorded ``decode_cached`` call for one signature."""

    def __init__(
        self,
        model: Kronos,
        state: DecodeState,
        uniforms: torch.Tensor,
        sampling: SamplingArgs,
        sample_count: int,
        steps: int,
        *,
        capture: bool,
    ):
        self.model, self.sample_count, self.steps = model, sample_count, steps
        self.state = state.empty_like()
        self.uniforms = torch.zeros_like(uniforms)
        self.sampling = SamplingArgs(sampling.T, sampling.top_k, sampling.top_p, uniforms=self.uniforms)
        self.graph: torch.cuda.CUDAGraph | None = None
        if capture:
            self._record()

    def _decode(self) -> None:
        decode_cached(self.model, self.state, self.sampling, self.sample_count, self.steps)

    def _record(self) -> None:
        side = torch.cuda.Stream(device=self.uniforms.device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture: library handles and workspaces exist first
            self._decode()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._decode()
        self.graph = graph

    def __call__(self, state: DecodeState, uniforms: torch.Tensor) -> None:
        """Decode ``state`` (generated columns written in place) with the draws ``uniforms`` [N, P, 2]."""
        self.state.copy_from(state)
        self.uniforms.copy_(uniforms)
        if self.graph is None:
            self._decode()
        else:
            self.graph.replay()
        generated = slice(state.width, state.width + self.steps)
        state.s1[:, generated] = self.state.s1[:, generated]
        state.s2[:, generated] = self.state.s2[:, generated]


def _signature(
    model: Kronos, state: DecodeState, sampling: SamplingArgs, sample_count: int, steps: int
) -> tuple:
    weights = hash(tuple(p.data_ptr() for p in model.parameters()))  # a moved/replaced weight re-records
    return (
        tuple(state.s1.shape),
        state.width,
        state.key_mask is not None,
        sample_count,
        steps,
        float(sampling.T),
        int(sampling.top_k),
        float(sampling.top_p),
        str(state.stamps.device),
        weights,
        next(model.parameters()).dtype,
    )


def captured_decode(
    model: Kronos, state: DecodeState, sampling: SamplingArgs, sample_count: int, steps: int, *, capture: bool
) -> CapturedDecode | None:
    """The recorded decode for this signature (recorded now if new); None when recording failed before."""
    graphs: OrderedDict = model.__dict__.setdefault("_captured_decodes", OrderedDict())
    key = _signature(model, state, sampling, sample_count, steps)
    if key in graphs:
        graphs.move_to_end(key)
        return graphs[key]
    uniforms = sampling.uniforms
    try:
        entry = CapturedDecode(model, state, uniforms, sampling, sample_count, steps, capture=capture)
    except RuntimeError as exc:  # an op that cannot be captured on this build: decode eagerly from now on
        warnings.warn(f"CUDA graph capture failed ({exc}); decoding eagerly", RuntimeWarning, stacklevel=3)
        entry = None
    graphs[key] = entry
    while len(graphs) > MAX_GRAPHS:
        graphs.popitem(last=False)
    return entry
