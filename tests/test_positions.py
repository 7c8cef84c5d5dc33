"""The position axis of the encoder (ocr2/modeling/positions.py): each scheme's positions, 2-D RoPE as a relative
rotation, the train-time shuffle, and the release's defaults kept bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from ocr2 import OCR2Config
from ocr2.config import EncoderConfig
from ocr2.modeling.encoder import DeepEncoderV2
from ocr2.modeling.positions import axial_rope, encoder_positions, encoder_rope
from ocr2.modeling.transformer import RotaryEmbedding, apply_rope


def test_official_positions_are_sequential():
    pos = encoder_positions(4, 4)
    assert pos[:, 0].tolist() == list(range(8)) and pos[:, 1].tolist() == list(range(8))


def test_shared_query_positions_are_one_position_after_the_visual_tokens():
    assert encoder_positions(4, 3, "raster", "shared")[4:].tolist() == [[4, 4]] * 3


def test_2d_positions_are_rows_and_columns_with_queries_as_further_rows():
    pos = encoder_positions(4, 4, "2d", "2d")
    assert pos[:4].tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert pos[4:].tolist() == [[2, 0], [2, 1], [3, 0], [3, 1]]


def test_2d_positions_need_a_square_grid():
    with pytest.raises(ValueError, match="square grid"):
        encoder_positions(6, 6, "2d", "sequential")


def test_an_unknown_scheme_names_the_choices():
    with pytest.raises(ValueError, match="query_positions 'diagonal'; choose from"):
        DeepEncoderV2(EncoderConfig(hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1,
                                    intermediate_size=16, query_positions="diagonal"), {1024: 4})


def test_axial_rope_with_equal_axes_is_1d_rope():
    rotary = RotaryEmbedding(16, 1e6)
    p = torch.arange(10)
    cos1, sin1 = rotary(p, torch.float32)
    cos2, sin2 = axial_rope(rotary, torch.stack([p, p], -1), torch.float32)
    assert torch.equal(cos1, cos2) and torch.equal(sin1, sin2)


def test_2d_rope_scores_depend_on_the_row_and_column_offsets_only():
    """q at (r, c), k at (r', c'): q·k after RoPE is a function of (r - r', c - c'), and not of r - r' alone."""
    rotary = RotaryEmbedding(16, 100.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)

    def score(a, b):
        cos, sin = axial_rope(rotary, torch.tensor([a, b]), torch.float32)
        qr, kr = apply_rope(q, cos[0, 0, 0], sin[0, 0, 0]), apply_rope(k, cos[0, 0, 1], sin[0, 0, 1])
        return float(qr @ kr)

    assert score((1, 2), (0, 0)) == pytest.approx(score((5, 7), (4, 5)), abs=1e-5)
    assert abs(score((1, 2), (0, 0)) - score((1, 3), (0, 0))) > 1e-3


def test_official_schemes_take_the_plain_1d_path():
    rotary = RotaryEmbedding(16, 1e6)
    cos, sin = encoder_rope(rotary, 4, 4, "raster", "sequential", torch.float32, "cpu")
    ref_cos, ref_sin = rotary(torch.arange(8), torch.float32)
    assert torch.equal(cos, ref_cos) and torch.equal(sin, ref_sin)


def _encoder(mask: str = "causal_flow", **positions) -> DeepEncoderV2:
    torch.manual_seed(0)
    cfg = EncoderConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64, mask=mask,
                        **positions)
    return DeepEncoderV2(cfg, {1024: 16}, "eager")


def test_shared_query_positions_change_the_encoder_output():
    x = torch.randn(1, 16, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, shared = _encoder().eval()(x, 1024), _encoder(query_positions="shared").eval()(x, 1024)
    assert (ref - shared).abs().max() > 1e-4


def test_shuffle_is_train_time_only():
    x = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = _encoder().eval()(x, 1024)
        shuffled = _encoder(shuffle_visual=True)
        assert torch.equal(shuffled.eval()(x, 1024), ref)
        assert (shuffled.train()(x, 1024) - ref).abs().max() > 1e-4


def test_shuffle_equals_feeding_the_tokens_in_that_order():
    """Training with shuffle_visual is the plain encoder run on the permuted visual tokens (same positions)."""
    x = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(1))
    shuffled, plain = _encoder(shuffle_visual=True).train(), _encoder().train()
    with torch.no_grad():
        torch.manual_seed(5)
        got = shuffled(x, 1024)
        torch.manual_seed(5)
        order = torch.rand(2, 16).argsort(-1)
        want = plain(x.gather(1, order[..., None].expand_as(x)), 1024)
    assert (got - want).abs().max() <= 1e-6


def test_shuffled_visual_outputs_come_back_in_raster_order():
    """A mask that keeps the visual tokens (`raster`): output j is token j's, wherever the shuffle put it."""
    x = torch.randn(1, 16, 32, generator=torch.Generator().manual_seed(1))
    enc = _encoder("raster", shuffle_visual=True).train()
    with torch.no_grad():
        torch.manual_seed(5)
        order = torch.rand(1, 16).argsort(-1)
        torch.manual_seed(5)
        got = enc(x, 1024)
        # The same run by hand: permute, run without the shuffle, un-permute.
        enc.cfg.shuffle_visual = False
        slots = enc(x.gather(1, order[..., None].expand_as(x)), 1024)
    want = torch.empty_like(slots).scatter_(1, order[..., None].expand_as(slots), slots)
    assert (got - want).abs().max() <= 1e-6


def test_a_config_json_from_before_the_position_fields_loads_with_the_release_defaults(tmp_path):
    data = {"model_type": "ocr2", **OCR2Config.from_preset("tiny").to_dict()}
    for key in ("visual_positions", "query_positions", "shuffle_visual"):
        del data["encoder"][key]
    (tmp_path / "config.json").write_text(json.dumps(data))
    enc = OCR2Config.load(tmp_path / "config.json").encoder
    assert (enc.visual_positions, enc.query_positions, enc.shuffle_visual) == ("raster", "sequential", False)


def test_position_schemes_round_trip_through_config_json(tmp_path):
    cfg = OCR2Config.from_preset("tiny")
    cfg.encoder.visual_positions, cfg.encoder.query_positions, cfg.encoder.shuffle_visual = "2d", "shared", True
    cfg.save(tmp_path / "config.json")
    assert OCR2Config.load(tmp_path / "config.json").encoder == cfg.encoder
