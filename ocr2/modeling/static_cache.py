"""A KV cache of fixed shape for decoding steps that `torch.compile` can capture (CUDA graphs included).

The default cache (`KVCache`) returns views of the filled part, so every decoding step attends over a longer
key tensor: a new shape per step, which a compiled graph must either guard on (a recompile per length) or
treat as dynamic (no CUDA graph). Here a step's shapes never change:

- the buffers (B, H, capacity, D) are allocated once, zero-filled (masked keys still enter the matmuls; zeros,
  unlike uninitialised memory, cannot put a NaN or inf into them), and marked as static addresses for CUDA
  graphs;
- a step writes its token's k/v at `index`, a (1,) tensor on the device, not a Python int (`index_copy_`);
- attention spans the whole buffer under a boolean mask: key j is visible iff j <= index and j is not padding.

Prefill goes through the ordinary `update` (Python slices, one call per prompt); only the one-token steps take the
static form. Cost: every step attends over `capacity` keys instead of the filled ones (so give a capacity close to
what will be used). A compiled step is specialised to its shapes and a CUDA graph to its addresses, so
`greedy_decode` rounds capacities up to a multiple of 256 and, when compiling, reuses one cache per thread across
calls (`reset`): it keeps that cache's memory between generations. Written for
`torch.compile(mode="reduce-overhead")` on CUDA; on CPU it is tested against the default path (same ids), while
capture by CUDA graphs has not been run by the tests here (no GPU).
"""

from __future__ import annotations

import torch

from ocr2.modeling.attention import static_cache_attention
from ocr2.modeling.decoder import KVCache


class StaticKVCache(KVCache):
    """`KVCache` with zero-filled, never-growing buffers and a tensor-indexed step (`step_attend_fn`)."""

    def __init__(self, num_layers: int, capacity: int, for_compile: bool = False):
        super().__init__(num_layers, capacity)
        self.for_compile = for_compile
        self.visible_base: torch.Tensor | None = None  # (B, 1, 1, capacity) bool: not padding
        self.slots: torch.Tensor | None = None  # (capacity,) 0..capacity-1

    def _static(self, t: torch.Tensor) -> torch.Tensor:
        """Mark a tensor the compiled step reads as a static address: CUDA graphs then use it in place instead
        of copying it into the graph's own input buffer at every replay (and the cache's k/v are updated in
        place by the graph). Only when compiling: it costs importing torch._dynamo."""
        if self.for_compile:
            torch._dynamo.mark_static_address(t)
        return t

    def reset(self) -> None:
        """Empty the cache for another generation, keeping its buffers (zeroed): a compiled step replays its
        CUDA graph only over the addresses it was recorded with, so a decoding loop reuses one cache."""
        self.lengths = [0] * len(self.lengths)
        self.key_mask = None
        for buf in self.keys + self.values:
            if buf is not None:
                buf.zero_()

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        buf = self.keys[layer]
        if self.lengths[layer] == 0 and buf is not None and (
                buf.shape[:2] != k.shape[:2] or buf.shape[3] != k.shape[3] or buf.dtype != k.dtype
                or buf.device != k.device):
            self.keys[layer] = self.values[layer] = None  # a reused cache, another batch or model: new buffers
        return super().update(layer, k, v)

    def _new_buffer(self, like: torch.Tensor, size: int) -> torch.Tensor:
        if size > self.capacity:
            raise ValueError(f"a static KV cache holds {self.capacity} positions, {size} were asked for")
        return self._static(like.new_zeros(*like.shape[:2], self.capacity, like.shape[3]))

    def start_steps(self) -> None:
        """After prefill: the padding mask over the whole buffer (prompt rows as given, every later key real)."""
        buf = self.keys[0]
        b, cap = buf.shape[0], buf.shape[2]
        base = torch.ones(b, cap, dtype=torch.bool, device=buf.device)
        if self.key_mask is not None:
            base[:, :self.key_mask.shape[1]] = self.key_mask
        base = base[:, None, None, :]
        if self.visible_base is not None and self.visible_base.shape == base.shape and \
                self.visible_base.device == base.device:
            self.visible_base.copy_(base)  # in place: the address a recorded graph reads
        else:
            self.visible_base = self._static(base)
        if self.slots is None or self.slots.shape[0] != cap or self.slots.device != buf.device:
            self.slots = self._static(torch.arange(cap, device=buf.device))

    def visible(self, index: torch.Tensor) -> torch.Tensor:
        """(B, 1, 1, capacity) bool: the keys a query written at `index` sees."""
        return self.visible_base & (self.slots <= index)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor):
        """Write one step's k/v (B, H, 1, D) at `index` in place; the whole buffers are returned."""
        self.keys[layer].index_copy_(2, index, k)
        self.values[layer].index_copy_(2, index, v)
        return self.keys[layer], self.values[layer]

    def step_attend_fn(self, layer: int, index: torch.Tensor, visible: torch.Tensor, backend: str):
        def attend(q, k, v):
            k, v = self.write(layer, k, v, index)
            return static_cache_attention(q, k, v, visible, backend)

        return attend
