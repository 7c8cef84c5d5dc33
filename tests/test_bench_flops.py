"""Model FLOPs of the benchmark (eval/bench/flops.py), attention included, against a hand count at `tiny`."""

import pytest
import torch

from eval.bench import flops
from eval.bench.model import ours_config, port_config
from ocr2 import OCR2Model


@pytest.fixture(scope="module")
def tiny():
    cfg = ours_config(port_config("tiny"), "sdpa")
    with torch.device("meta"):
        return cfg, OCR2Model(cfg)


def test_attention_by_hand_for_the_tiny_vision_path(tiny):
    cfg, model = tiny
    # tiny: SAM width 32 (2 heads of 16), 2 blocks (block 1 global), window 14; encoder 48 wide, 4 heads, 2 layers.
    # 1024² view: 64x64 patches, padded to 70x70 = 25 windows of 196; global block: 4096² pairs.
    # 768² crop: 48x48 patches, padded to 56x56 = 16 windows; global: 2304² pairs.
    sam = 4 * 32 * ((25 * 196**2 + 4096**2) + (16 * 196**2 + 2304**2))
    # causal_flow: visual tokens see all visual tokens; query i sees every visual token and queries 0..i.
    def enc(n):
        return n * n + n * n + n * (n + 1) // 2
    encoder = 2 * 4 * 48 * (enc(256) + enc(144))
    assert flops.vision_forward(cfg, model, crops=1).attention == sam + encoder


def test_decode_step_by_hand(tiny):
    cfg, model = tiny
    # decoder 64 wide, 4 heads, 2 layers: layer 0 dense SwiGLU 160, layer 1 MoE 8 experts (top-2) of 24 + 2 shared.
    attn = 4 * 64 * 64 + 2 * 64  # q, k, v, o (no bias) + two RMSNorms
    dense = attn + 3 * 64 * 160
    moe = attn + 8 * 64 + 2 / 8 * 8 * 3 * 64 * 24 + 3 * 64 * 48  # router, 2 of 8 experts, shared (2 x 24 wide)
    head = 64 * 300
    f = flops.decode_step(cfg, model, cache_len=10)
    assert f.params == pytest.approx(2 * (dense + moe + head))
    assert f.attention == 2 * 4 * 11 * 64  # 2 layers, QK^T + PV over 10 cached + itself, 64 = heads x head_dim


def test_training_counts_causal_pairs_and_three_forwards(tiny):
    cfg, model = tiny
    fwd = flops.decoder_forward(cfg, model, positions=100, head_positions=7)
    assert fwd.attention == 2 * 4 * 64 * (100 * 101 // 2)
    step = flops.train_step(cfg, model, crops=2, positions=100, labelled=7)
    assert step.total == pytest.approx(3 * (flops.vision_forward(cfg, model, 2).total + fwd.total))
    # the head is counted on the labelled positions only: 7 x 64 x 300 multiply-adds
    assert fwd.params - flops.decoder_forward(cfg, model, 100, 0).params == pytest.approx(2 * 7 * 64 * 300)


def test_attention_share_at_official_shallow_is_the_official_widths_share():
    """At the official widths SAM's global attention is a small part of the vision FLOPs (issue 22: 11-13%),
    unlike `small` (64-69%): the reason the default size changed."""
    for size, low, high in (("official-shallow", 0.05, 0.35), ("small", 0.5, 0.9)):
        cfg = ours_config(port_config(size), "sdpa")
        with torch.device("meta"):
            model = OCR2Model(cfg)
        v = cfg.vision
        sam_global = 0.0
        for view in [cfg.global_view_size] + [cfg.crop_size] * 2:
            _, pairs = flops.sam_attention_pairs(cfg, view)
            sam_global += len(v.global_attn_indexes) * flops.pair_flops(pairs, v.num_heads, v.width // v.num_heads)
        share = sam_global / flops.vision_forward(cfg, model, 2).total
        assert low < share < high, (size, share)


def test_decode_step_bytes_by_hand(tiny):
    cfg, model = tiny
    # As in the FLOP count above: the parameters one token uses (2 of 8 routed experts) and the whole head, fp32;
    # the cache: 2 layers x (k, v) x 10 positions x 4 heads x 16 = 64 values.
    attn = 4 * 64 * 64 + 2 * 64
    dense = attn + 3 * 64 * 160
    moe = attn + 8 * 64 + 2 / 8 * 8 * 3 * 64 * 24 + 3 * 64 * 48
    weights, cache = flops.decode_step_bytes(cfg, model, cache_len=10)
    assert weights == pytest.approx(4 * (dense + moe + 64 * 300))
    assert cache == 4 * 2 * 2 * 10 * 64
