"""The official causal-flow mask is exactly the DeepSeek-OCR 2 paper's Eq. 1 (the prefix-LM mask the release's
`qwen2_d2e.py` builds in `_create_custom_4d_mask`)."""

import pytest
import torch

from ocr2.modeling.masks import MaskSpec, get_mask_spec, mask_names, register


def test_causal_flow_matches_the_reference_picture():
    expected = torch.tensor([
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(get_mask_spec("causal_flow").dense(3, 3), expected)


def test_causal_flow_is_a_prefix_lm_mask():
    n = 7
    dense = get_mask_spec("causal_flow").dense(n, n)
    causal = torch.ones(2 * n, 2 * n, dtype=torch.bool).tril()
    prefix = torch.zeros(2 * n, 2 * n, dtype=torch.bool)
    prefix[:n, :n] = True
    assert torch.equal(dense, causal | prefix)


def test_causal_flow_runs_as_two_calls():
    assert get_mask_spec("causal_flow").split_form() == ("full", "causal")


def test_unknown_mask_lists_registered_names():
    with pytest.raises(ValueError, match="causal_flow"):
        get_mask_spec("no_such_mask")


def test_registering_a_variant_is_one_call():
    spec = register(MaskSpec("test_only_blind_queries", query_to_query="none"))
    assert "test_only_blind_queries" in mask_names()
    assert torch.equal(spec.dense(2, 2)[2:, 2:], torch.eye(2, dtype=torch.bool))


def test_ablation_variants_are_registered():
    assert {"causal_flow", "bidirectional_flow", "full_bidirectional", "causal_prefix", "raster"} <= set(mask_names())


def test_raster_variant_keeps_visual_tokens_and_has_no_queries():
    from ocr2 import OCR2Config

    spec = get_mask_spec("raster")
    assert (spec.use_queries, spec.keep) == (False, "visual")
    cfg = OCR2Config.from_preset("official")
    cfg.encoder.mask = "raster"
    assert cfg.image_token_count(0) == 257  # 256 visual tokens of the global view + separator


def test_causal_prefix_makes_visual_tokens_causal():
    dense = get_mask_spec("causal_prefix").dense(3, 3)
    assert torch.equal(dense[:3, :3], torch.ones(3, 3, dtype=torch.bool).tril())
