"""Record a fixed-shape forecast call once as a CUDA graph, then replay it with new inputs.

On a GPU a small batch is bound by kernel launches: a forecast of pred_len steps issues thousands of small
kernels from Python. Once the host has planned a call (windows, positions, masks: see
``kronos_model.generation._Plan``), a fully cached call is pure device work whose shapes depend only on a
few numbers (batch, prompt width, pred_len, sample count, padding, sampling arguments, dtype). The first
call with a signature records it into a ``torch.cuda.CUDAGraph`` over static copies of its inputs; later
calls copy their inputs into those buffers and replay everything with one launch. Off CUDA
(``capture=False``) the same object runs the function eagerly on its buffers, which is how the recording
logic is tested without a GPU.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable

import torch
from torch import nn

MAX_RECORDINGS = 4  # signatures kept per model (each holds its buffers and a private memory pool)


class RecordedCall:
    """``fn(**inputs)`` over static copies of ``inputs``; recorded as a CUDA graph when ``capture``."""

    def __init__(self, fn: Callable[..., tuple], inputs: dict[str, torch.Tensor], *, capture: bool):
        self.fn = fn
        self.inputs = {name: tensor.clone() for name, tensor in inputs.items()}
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: tuple | None = None
        if capture:
            self._record()

    def _record(self) -> None:
        device = next(iter(self.inputs.values())).device
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up off the capture: library handles, workspaces, compiled code
            self.fn(**self.inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.outputs = self.fn(**self.inputs)
        self.graph = graph

    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple:
        """Outputs for ``inputs``; they live in static buffers overwritten by the next call: copy them."""
        for name, tensor in inputs.items():
            self.inputs[name].copy_(tensor)
        if self.graph is None:
            return self.fn(**self.inputs)
        self.graph.replay()
        return self.outputs


def recorded_call(
    fn: Callable[..., tuple],
    inputs: dict[str, torch.Tensor],
    key: tuple,
    *,
    owner: nn.Module,
    modules: Iterable[nn.Module],
    capture: bool,
) -> tuple | None:
    """Run ``fn`` through the recording for (``key``, input shapes, weights), recording it first if new.

    Recordings live on ``owner`` (at most :data:`MAX_RECORDINGS`, least recently used dropped). A moved or
    replaced weight of ``modules`` changes the signature. Returns None when recording fails on this build
    (the caller then runs eagerly; the failure is remembered and warned about once).
    """
    recordings: OrderedDict = owner.__dict__.setdefault("_recorded_calls", OrderedDict())
    weights = hash(tuple(p.data_ptr() for module in modules for p in module.parameters()))
    shapes = tuple((name, tuple(t.shape), t.dtype, str(t.device)) for name, t in sorted(inputs.items()))
    signature = (key, weights, shapes)
    if signature in recordings:
        recordings.move_to_end(signature)
        entry = recordings[signature]
    else:
        try:
            entry = RecordedCall(fn, inputs, capture=capture)
        except RuntimeError as exc:  # an op this build cannot capture: decode eagerly from now on
            warnings.warn(
                f"CUDA graph recording failed ({exc}); running eagerly", RuntimeWarning, stacklevel=3
            )
            entry = None
        recordings[signature] = entry
        while len(recordings) > MAX_RECORDINGS:
            recordings.popitem(last=False)
    return None if entry is None else entry(inputs)
