"""Key/value cache for incremental decoding: one growing buffer pair per attention layer."""

from __future__ import annotations

import torch


class LayerCache:
    """Keys and values [B, H, L, hd] of one attention layer, preallocated to ``capacity`` positions."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.length = 0

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new keys/values [B, H, n, hd]; return all keys/values so far."""
        n = k.shape[2]
        if self.keys is None:
            shape = (k.shape[0], k.shape[1], max(self.capacity, n), k.shape[3])
            self.keys = k.new_empty(shape)
            self.values = v.new_empty(shape)
        if self.length + n > self.keys.shape[2]:
            raise RuntimeError(f"KV cache overflow: {self.length} + {n} > {self.keys.shape[2]}")
        self.keys[:, :, self.length : self.length + n] = k
        self.values[:, :, self.length : self.length + n] = v
        self.length += n
        return self.keys[:, :, : self.length], self.values[:, :, : self.length]

    def repeat_interleave(self, repeats: int) -> None:
        """Duplicate every row ``repeats`` times (one prefill shared by several sample paths)."""
        if self.keys is not None and repeats > 1:
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
