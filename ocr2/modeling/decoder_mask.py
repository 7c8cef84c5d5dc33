"""The decoder's attention rule, stated once, and the forms each attention backend needs of it.

Rule: the `q_len` new tokens sit at the end of `kv_len` keys (a KV cache of earlier tokens only lengthens the
keys), so query i is at absolute position i + offset, offset = kv_len - q_len. It may see key j iff j <= its
position, key j is a real token (not padding), and — when rows are packed — key j belongs to the same sample.
Every token also sees itself: a padding query would otherwise have no key at all, and an empty row is NaN in
SDPA, which leaks into real rows through 0-probability products.

`DecoderMask.allowed` is that rule as a predicate; the dense boolean mask (eager, sdpa), the FlexAttention
mask_mod / block mask and flash-attn's varlen arguments are all derived from it. The decoder builds one
`DecoderMask` and one backend form per forward and hands them to every layer; nothing here is cached between
forwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True, eq=False)  # eq=False: holds tensors; identity is the only meaningful equality
class DecoderMask:
    q_len: int
    kv_len: int
    key_mask: torch.Tensor | None = None  # (B, kv_len) bool, True on real tokens; None when nothing is padded
    sequence_ids: torch.Tensor | None = None  # (B, kv_len) sample index per token when rows are packed

    def __post_init__(self):
        if self.sequence_ids is not None and self.q_len != self.kv_len:
            raise ValueError("packed sequences (sequence_ids) cannot be combined with a KV cache")
        for name in ("key_mask", "sequence_ids"):
            t = getattr(self, name)
            if t is not None and (t.dim() != 2 or t.shape[1] != self.kv_len):
                raise ValueError(f"{name} must be (B, {self.kv_len}), got {tuple(t.shape)}")

    @classmethod
    def build(cls, q_len: int, attention_mask: torch.Tensor | None = None, past: int = 0,
              sequence_ids: torch.Tensor | None = None) -> "DecoderMask":
        """The rule for `q_len` new tokens after `past` cached ones; attention_mask (B, past + q_len), 1 = real.
        An all-real mask is dropped, so unpadded batches take the backends' mask-free causal kernels."""
        key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            key_mask = attention_mask.bool()
        return cls(q_len, past + q_len, key_mask, sequence_ids)

    @property
    def offset(self) -> int:
        return self.kv_len - self.q_len

    @property
    def plain(self) -> bool:
        """Causal only: no padding, no packing (the same mask for every row)."""
        return self.key_mask is None and self.sequence_ids is None

    @property
    def batch(self) -> int | None:
        rows = self.key_mask if self.key_mask is not None else self.sequence_ids
        return None if rows is None else rows.shape[0]

    def allowed(self, b, q_idx, kv_idx) -> torch.Tensor:
        """Boolean "may attend" for broadcastable row / query / key index tensors (`b` unused when plain)."""
        pos = q_idx + self.offset
        keep = kv_idx <= pos
        if self.sequence_ids is not None:
            keep = keep & (self.sequence_ids[b, pos] == self.sequence_ids[b, kv_idx])
        if self.key_mask is not None:
            keep = keep & self.key_mask[b, kv_idx]
        return keep | (kv_idx == pos)

    # ------------------------------------------------------------------------------------- backend forms

    def dense(self, device: torch.device | str | None = None) -> torch.Tensor:
        """(B or 1, 1, q_len, kv_len) boolean mask, vectorised from `allowed`."""
        q_idx = torch.arange(self.q_len, device=device)[:, None]
        kv_idx = torch.arange(self.kv_len, device=device)[None, :]
        b = 0 if self.plain else torch.arange(self.batch, device=device)[:, None, None]
        mask = self.allowed(b, q_idx, kv_idx)
        return (mask[None] if mask.dim() == 2 else mask)[:, None]

    def block_mask(self, device: torch.device | str):
        """`allowed` as a FlexAttention block mask (one for all rows when plain, else one per row)."""
        from torch.nn.attention.flex_attention import create_block_mask

        def mask_mod(b, h, q_idx, kv_idx):
            return self.allowed(b, q_idx, kv_idx)

        return create_block_mask(mask_mod, self.batch, None, self.q_len, self.kv_len, device=device)

    def varlen(self) -> "VarlenPlan | None":
        """flash_attn_varlen_func's arguments for this rule, or None where its causal-per-sequence kernel cannot
        express it exactly (samples that are not contiguous runs; a padded new query under a KV cache). Plain
        causal needs no plan (flash_attn_func with causal=True). Padding queries drop out of the kernel and get
        their own value, what a padding token that sees only itself gets (their outputs carry no loss)."""
        if self.plain:
            return None
        if self.sequence_ids is not None:
            # Packed samples: each run of equal ids in a row is one varlen sequence, causal within it. Padding
            # (key_mask 0, as the packing collator marks it, with sequence_ids -1) drops out; unmasked -1 tokens
            # are one more sample after the row's last.
            keep = (self.key_mask if self.key_mask is not None
                    else torch.ones_like(self.sequence_ids, dtype=torch.bool))
            ids = torch.where(self.sequence_ids >= 0, self.sequence_ids, self.kv_len)
            running = torch.where(keep, ids, -1).cummax(dim=1).values
            if not bool(((running == ids) | ~keep).all()):  # kept ids non-decreasing: contiguous samples
                return None
            return VarlenPlan.of(keep, keep, ids, ids)
        # Padding: padded tokens drop out, one varlen sequence per row over its real tokens.
        q_keep = self.key_mask[:, self.offset:]
        if self.offset and not bool(q_keep.all()):
            return None
        return VarlenPlan.of(q_keep, self.key_mask, torch.zeros_like(q_keep, dtype=torch.long),
                             torch.zeros_like(self.key_mask, dtype=torch.long))

    def left_padding(self) -> torch.Tensor:
        """(B,) int32 leading padding keys per row, for flash's KV-cache kernel (`cache_leftpad`). Valid only when
        every row's padding is a prefix of its keys (left-padded prompts, as greedy decoding has): that is
        asserted on the device, so no host sync."""
        pad = (~self.key_mask).sum(dim=1)
        idx = torch.arange(self.kv_len, device=self.key_mask.device)
        torch._assert_async((self.key_mask == (idx[None] >= pad[:, None])).all(),
                            "flash decoding with a KV cache needs left padding only")
        return pad.to(torch.int32)


@dataclass(frozen=True, eq=False)
class VarlenPlan:
    """Which flattened (row, position) tokens take part in flash's varlen call, and where its sequences start."""
    q_index: torch.Tensor  # flat indices into (B * q_len) of the kept queries
    k_index: torch.Tensor  # flat indices into (B * kv_len) of the kept keys
    cu_q: torch.Tensor  # int32 cumulative sequence lengths, leading 0
    cu_k: torch.Tensor
    max_q: int
    max_k: int
    dropped: torch.Tensor  # flat indices of dropped queries: padding, which only sees itself

    @classmethod
    def of(cls, q_keep, k_keep, q_segments, k_segments) -> "VarlenPlan":
        """q_keep (B, Lq), k_keep (B, Lk) bool; segments (B, L) long, non-decreasing along each row over kept
        tokens (one id per packed sample, or per row)."""
        # Each nonzero / unique / max below is a host sync on CUDA: done once per forward, shared by q and k
        # when they are the same tokens (packed rows).
        q_index = q_keep.reshape(-1).nonzero().squeeze(1)
        cu_q, max_q = _cu_seqlens(q_segments, q_index)
        if k_keep is q_keep and k_segments is q_segments:
            cu_k, max_k, k_index = cu_q, max_q, q_index
        else:
            k_index = k_keep.reshape(-1).nonzero().squeeze(1)
            cu_k, max_k = _cu_seqlens(k_segments, k_index)
        return cls(q_index, k_index, cu_q, cu_k, max_q, max_k, (~q_keep).reshape(-1).nonzero().squeeze(1))


def _cu_seqlens(segments: torch.Tensor, kept: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Cumulative lengths (int32, leading 0) of the runs of equal (row, segment) over the kept flat indices."""
    rows = torch.arange(segments.shape[0], device=segments.device)[:, None].expand_as(segments)
    seg = segments * segments.shape[0] + rows  # unique per (row, segment); rows never merge
    seg = seg.reshape(-1)[kept]
    _, counts = torch.unique_consecutive(seg, return_counts=True)
    cu = F.pad(counts.cumsum(0), (1, 0)).to(torch.int32)
    return cu, int(counts.max()) if counts.numel() else 0
