"""Reading-order mask specs for DeepEncoder V2: the ablation axis of this codebase.

The encoder input of one view is `[visual (n_v) ; flow queries (n_q)]`. A `MaskSpec` says, block by
block, who may attend to whom, and which outputs go on to the decoder. Every attention backend
(ocr2.modeling.attention) derives its kernel from the spec, never from code inside the layers:
`allowed()` gives the boolean (q, k) rule (dense masks, FlexAttention's mask_mod), and `split_form()`
says whether the spec runs as two mask-free calls (visual rows, query rows).

A new variant is one `register(MaskSpec(...))` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Rule = Literal["full", "causal", "none"]


@dataclass(frozen=True)
class MaskSpec:
    name: str
    visual_to_visual: Rule = "full"  # "causal": raster order, as a plain LM would read patches
    visual_to_query: bool = False  # may visual tokens see the flow queries?
    query_to_visual: bool = True
    query_to_query: Rule = "causal"  # "causal" is the causal flow of the paper (Eq. 1)
    use_queries: bool = True  # False: no flow queries at all (DeepSeek-OCR v1 style)
    keep: Literal["queries", "visual"] = "queries"  # which encoder outputs feed the decoder
    doc: str = ""

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor, n_visual: int) -> torch.Tensor:
        """Boolean "may attend" for broadcastable index tensors (also usable as a FlexAttention mask_mod)."""
        q_vis, k_vis = q_idx < n_visual, kv_idx < n_visual
        q_qry, k_qry = ~q_vis, ~k_vis

        def rule(r: Rule) -> torch.Tensor | bool:
            if r == "full":
                return True
            if r == "causal":
                return kv_idx <= q_idx
            return kv_idx == q_idx  # "none": a token still attends to itself

        vv = q_vis & k_vis & rule(self.visual_to_visual)
        vq = q_vis & k_qry & self.visual_to_query
        qv = q_qry & k_vis & self.query_to_visual
        qq = q_qry & k_qry & rule(self.query_to_query)
        return vv | vq | qv | qq

    def dense(self, n_visual: int, n_query: int, device: torch.device | str | None = None) -> torch.Tensor:
        """(L, L) boolean mask, built vectorised from `allowed` (no Python loop over positions)."""
        n = n_visual + (n_query if self.use_queries else 0)
        idx = torch.arange(n, device=device)
        return self.allowed(idx[:, None], idx[None, :], n_visual)

    def split_form(self) -> tuple[Rule, Rule] | None:
        """(visual-rows rule over visual keys, query-rows rule over all keys) when the spec is the
        two-call form: visual rows never see queries, query rows see every visual token. The query-row
        rule "causal" is a causal mask aligned to the bottom-right corner of the (n_q x n_v+n_q) scores."""
        if self.visual_to_query or not self.query_to_visual or self.query_to_query == "none":
            return None
        if self.visual_to_visual == "none":
            return None
        return self.visual_to_visual, self.query_to_query


_REGISTRY: dict[str, MaskSpec] = {}


def register(spec: MaskSpec) -> MaskSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"mask spec {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_mask_spec(name: str) -> MaskSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown encoder mask {name!r}; registered: {sorted(_REGISTRY)}") from None


def mask_names() -> list[str]:
    return sorted(_REGISTRY)


# The official DeepSeek-OCR 2 mask (paper Eq. 1; the release's `qwen2_d2e.py::_create_custom_4d_mask`): a
# prefix-LM with prefix n_visual.
register(MaskSpec("causal_flow", doc="official: V<->V, Q->V all, Q->Q causal, V-/->Q"))

# Ablation variants (issue: reading-order mask ablation). Each answers one question the paper leaves open.
register(MaskSpec("bidirectional_flow", query_to_query="full",
                  doc="queries see each other both ways: is the causal order among queries what matters?"))
register(MaskSpec("full_bidirectional", visual_to_query=True, query_to_query="full",
                  doc="everything sees everything (a plain bidirectional encoder with extra query slots)"))
register(MaskSpec("causal_prefix", visual_to_visual="causal",
                  doc="visual tokens causal in raster order (an LM-style encoder), queries as official"))
register(MaskSpec("raster", use_queries=False, keep="visual",
                  doc="no flow queries: visual tokens (raster order) go straight to the decoder, as in DeepSeek-OCR v1"))
