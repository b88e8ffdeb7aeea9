"""Key/value cache for incremental decoding: one growing buffer pair per attention layer.

After a prefill of one row per window, :meth:`LayerCache.share` keeps those keys/values once per window
as a prefix that the window's ``repeats`` sample rows all read (no copy per sample); only keys/values of
tokens appended afterwards are stored per row. :func:`kronos_model.layers.prefix_attention` attends to
both parts.
"""

from __future__ import annotations

import torch


class LayerCache:
    """Keys and values [B, H, L, hd] of one attention layer, preallocated to ``capacity`` positions."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.length = 0  # positions held, shared prefix included
        self.prefix: tuple[torch.Tensor, torch.Tensor] | None = None  # [B, H, Lp, hd] each, once per window
        self.group = 1  # rows that read each prefix row

    @property
    def prefix_length(self) -> int:
        return 0 if self.prefix is None else self.prefix[0].shape[2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new keys/values [B, H, n, hd]; return this row's keys/values so far (after the prefix)."""
        n = k.shape[2]
        if self.keys is None:
            shape = (k.shape[0], k.shape[1], max(self.capacity, n), k.shape[3])
            self.keys = k.new_empty(shape)
            self.values = v.new_empty(shape)
        own = self.length - self.prefix_length
        if own + n > self.keys.shape[2]:
            raise RuntimeError(f"KV cache overflow: {self.length} + {n} > {self.capacity}")
        self.keys[:, :, own : own + n] = k
        self.values[:, :, own : own + n] = v
        self.length += n
        return self.keys[:, :, : own + n], self.values[:, :, : own + n]

    def read(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This row's keys/values after the prefix, [B, H, length - prefix_length, hd]."""
        own = self.length - self.prefix_length
        return self.keys[:, :, :own], self.values[:, :, :own]

    def share(self, repeats: int) -> None:
        """Keep what is stored as a prefix read by ``repeats`` rows each; new tokens get per-row space."""
        if self.keys is None or repeats <= 1 or self.prefix is not None:
            self.repeat_interleave(repeats)
            return
        n = self.length
        self.prefix = (self.keys[:, :, :n], self.values[:, :, :n])
        self.group = repeats
        b, h, _, hd = self.keys.shape
        rest = max(self.capacity - n, 1)
        self.keys = self.keys.new_empty((b * repeats, h, rest, hd))
        self.values = self.values.new_empty((b * repeats, h, rest, hd))

    def repeat_interleave(self, repeats: int) -> None:
        """Duplicate every row ``repeats`` times (one prefill copied to several sample paths)."""
        if self.keys is not None and repeats > 1:
            if self.prefix is not None:
                raise RuntimeError("a cache with a shared prefix cannot be repeated again")
            self.keys = self.keys.repeat_interleave(repeats, dim=0)
            self.values = self.values.repeat_interleave(repeats, dim=0)


class KVCache:
    """Per-layer caches for a stack of blocks, plus the dependency layer's projected context."""

    def __init__(self, n_layers: int, capacity: int):
        self.layers = [LayerCache(capacity) for _ in range(n_layers)]
        self.dep = LayerCache(capacity)

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0

    def repeat_interleave(self, repeats: int) -> None:
        for layer in [*self.layers, self.dep]:
            layer.repeat_interleave(repeats)

    def share(self, repeats: int) -> None:
        """Every layer keeps its prefill once per window for ``repeats`` sample rows (see ``LayerCache.share``)."""
        for layer in [*self.layers, self.dep]:
            layer.share(repeats)


def kv_bytes(layers: int, width: int, d_model: int, elem: int, windows: int, samples: int, new: int) -> int:
    """KV bytes of ``windows`` windows: a prompt of ``width`` tokens once each, ``new`` tokens per sample row."""
    return windows * (width + samples * new) * 2 * d_model * layers * elem
