"""Vision tokenizer: parity with the transformers port of the DeepSeek-OCR 2 SAM encoder, official shapes, and the
position-table memo.

The port (`DeepseekOcr2SamVisionEncoder`) initialises pos_embed and the rel-pos tables to zero, so every parameter
is re-randomised here; otherwise the position paths (the part most likely to be wrong) would go untested.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from ocr2.config import VisionTokenizerConfig
from ocr2.keymaps.sam import port_to_ours
from ocr2.modeling.vision_tokenizer import VisionTokenizer

port_modeling = pytest.importorskip("transformers.models.deepseek_ocr2.modeling_deepseek_ocr2")
port_config = pytest.importorskip("transformers.models.deepseek_ocr2.configuration_deepseek_ocr2")

TINY = VisionTokenizerConfig(width=32, depth=3, num_heads=2, window_size=14, global_attn_indexes=(1,),
                             neck_channels=16, compressor_channels=(24, 32))
TOL = 1e-5


def _port_sam(attn_impl: str):
    cfg = port_config.DeepseekOcr2SamVisionConfig(
        hidden_size=TINY.width, num_hidden_layers=TINY.depth, num_attention_heads=TINY.num_heads,
        image_size=TINY.image_size, patch_size=TINY.patch_size, window_size=TINY.window_size,
        global_attn_indexes=list(TINY.global_attn_indexes), output_channels=TINY.neck_channels,
        downsample_channels=list(TINY.compressor_channels), layer_norm_eps=TINY.layer_norm_eps,
    )
    cfg._attn_implementation = attn_impl
    model = port_modeling.DeepseekOcr2SamVisionEncoder(cfg).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif "rel_pos" in name:
                p.copy_(0.5 * noise)  # large enough that the rel-pos bias visibly moves the logits
            else:
                p.copy_(0.05 * noise)
    return model


def _ours_from(port) -> VisionTokenizer:
    ours = VisionTokenizer(TINY).eval()
    ours.load_state_dict({port_to_ours(k): v for k, v in port.state_dict().items()}, strict=True)
    return ours


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def pair(request):
    torch.manual_seed(0)
    port = _port_sam(request.param)
    return port, _ours_from(port)


def _compare(pair, batch: int, height: int, width: int) -> None:
    port, ours = pair
    x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = port(x).last_hidden_state
        out = ours(x)
    ref_tokens = ref.flatten(2).transpose(1, 2)
    assert out.shape == ref_tokens.shape == (batch, (height // 64) * (width // 64), TINY.compressor_channels[-1])
    diff = (out - ref_tokens).abs().max().item()
    assert diff <= TOL, f"max abs diff {diff:.3g} at {height}x{width}"


# ----------------------------------------------------------------------------------------- key map


def test_port_key_map_covers_port_state_dict():
    port_sd = _port_sam("eager").state_dict()
    ours_sd = VisionTokenizer(TINY).state_dict()
    mapped = {port_to_ours(k): tuple(v.shape) for k, v in port_sd.items()}
    assert mapped == {k: tuple(v.shape) for k, v in ours_sd.items()}


def test_port_key_map_rejects_unknown_key():
    with pytest.raises(KeyError, match="layers.0.attn.bogus"):
        port_to_ours("layers.0.attn.bogus")


# ----------------------------------------------------------------------------------------- numerical parity


def test_parity_native_1024(pair):
    _compare(pair, batch=1, height=1024, width=1024)


def test_parity_crop_768_interpolated_positions(pair):
    # 48x48 grid: bicubic-antialiased pos embed, global rel-pos 127 -> 95, windows padded 48 -> 56 and unmasked.
    _compare(pair, batch=2, height=768, width=768)


def test_parity_non_square_768x1024(pair):
    # Height and width axes resized independently (rel_pos_h keeps 127 rows, rel_pos_w goes to 95).
    _compare(pair, batch=1, height=768, width=1024)


# ----------------------------------------------------------------------------------------- official shapes


def _official_shapes() -> dict[str, tuple[int, ...]]:
    """The SAM part of the official checkpoint's key table (names from the hub repo's `model.safetensors.index.json`,
    shapes from the release's `sam_vary_sdpa.py`), relative to `model.sam_model.`."""
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embed.proj.weight": (768, 3, 16, 16), "patch_embed.proj.bias": (768,),
        "pos_embed": (1, 64, 64, 768),
        "neck.0.weight": (256, 768, 1, 1), "neck.1.weight": (256,), "neck.1.bias": (256,),
        "neck.2.weight": (256, 256, 3, 3), "neck.3.weight": (256,), "neck.3.bias": (256,),
        "net_2.weight": (512, 256, 3, 3), "net_3.weight": (896, 512, 3, 3),
    }
    for i in range(12):
        b = f"blocks.{i}."
        rel = 127 if i in (2, 5, 8, 11) else 27
        shapes.update({
            b + "norm1.weight": (768,), b + "norm1.bias": (768,), b + "norm2.weight": (768,), b + "norm2.bias": (768,),
            b + "attn.qkv.weight": (2304, 768), b + "attn.qkv.bias": (2304,),
            b + "attn.proj.weight": (768, 768), b + "attn.proj.bias": (768,),
            b + "attn.rel_pos_h": (rel, 64), b + "attn.rel_pos_w": (rel, 64),
            b + "mlp.lin1.weight": (3072, 768), b + "mlp.lin1.bias": (3072,),
            b + "mlp.lin2.weight": (768, 3072), b + "mlp.lin2.bias": (768,),
        })
    return shapes


def _official_model() -> VisionTokenizer:
    with torch.device("meta"):
        return VisionTokenizer(VisionTokenizerConfig())


def test_official_param_count():
    per_block = 4 * 768 + (2304 * 768 + 2304) + (768 * 768 + 768) + (3072 * 768 + 3072) + (768 * 3072 + 768)
    expected = (
        768 * 3 * 16 * 16 + 768                    # patch embed
        + 64 * 64 * 768                            # pos embed
        + 12 * per_block
        + 4 * 2 * 127 * 64 + 8 * 2 * 27 * 64       # rel-pos tables: 4 global, 8 windowed blocks
        + 256 * 768 + 2 * 256 + 256 * 256 * 9 + 2 * 256  # neck
        + 512 * 256 * 9 + 896 * 512 * 9            # net_2, net_3
    )
    assert sum(p.numel() for p in _official_model().parameters()) == expected


def test_official_key_names_and_shapes_match_checkpoint_table():
    got = {k: tuple(v.shape) for k, v in _official_model().state_dict().items()}
    assert got == _official_shapes()


# ----------------------------------------------------------------------------------------- mechanisms


def test_windowed_padding_is_not_masked():
    """A 6x6 grid in a 14x14 window: the 190 zero cells (post-norm1) must act as ordinary keys/values."""
    torch.manual_seed(0)
    model = VisionTokenizer(TINY).eval()
    block = model.blocks[0]
    assert block.window_size == 14
    attn = block.attn
    with torch.no_grad():
        attn.qkv.bias.normal_(std=0.5)  # padded cells' k/v are exactly the qkv bias; make it matter
        y = torch.randn(1, 6, 6, TINY.width)
        ours = block._windowed_attention(y)

        padded = F.pad(y, (0, 0, 0, 8, 0, 8))
        q, k, v = rearrange(attn.qkv(padded), "b h w (three n d) -> three b n (h w) d", three=3, n=attn.num_heads)
        qg = rearrange(q, "b n (h w) d -> b n h w d", h=14)
        rh, rw = attn._rel_table("h", 14, 14), attn._rel_table("w", 14, 14)
        bias = (torch.einsum("bnhwd,hmd->bnhwm", qg, rh)[..., :, None]
                + torch.einsum("bnhwd,wld->bnhwl", qg, rw)[..., None, :])
        bias = rearrange(bias, "b n h w m l -> b n (h w) (m l)")
        real = torch.zeros(14, 14, dtype=torch.bool)
        real[:6, :6] = True
        masked_bias = bias.masked_fill(~real.flatten(), float("-inf"))

        def run(b):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=b)
            return attn.proj(rearrange(out, "b n (h w) d -> b h w (n d)", h=14))[:, :6, :6]

        unmasked, masked = run(bias), run(masked_bias)
    assert (ours - unmasked).abs().max().item() <= 1e-6
    assert (ours - masked).abs().max().item() > 1e-3


def test_forward_is_raster_order_of_feature_map():
    model = VisionTokenizer(TINY).eval()
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        fmap = model.feature_map(x)
        tokens = model(x)
    assert fmap.shape == (2, 32, 4, 3)
    assert model.num_tokens(256, 192) == 12
    torch.testing.assert_close(tokens, fmap.flatten(2).transpose(1, 2), rtol=0, atol=0)


def test_eval_memo_reuses_resized_tables():
    model = VisionTokenizer(TINY).eval()
    with torch.no_grad():
        first = model.position_embedding(48, 48)
        assert model.position_embedding(48, 48) is first
        rel = model.blocks[1].attn._rel_table("h", 48, 48)
        assert model.blocks[1].attn._rel_table("h", 48, 48) is rel
    assert rel.shape == (48, 48, TINY.width // TINY.num_heads)


def test_eval_memo_invalidated_by_in_place_update():
    model = VisionTokenizer(TINY).eval()
    with torch.no_grad():
        stale = model.position_embedding(48, 48).clone()
        stale_rel = model.blocks[1].attn._rel_table("w", 48, 48).clone()
        model.pos_embed.mul_(2.0)
        model.blocks[1].attn.rel_pos_w.mul_(2.0)
        torch.testing.assert_close(model.position_embedding(48, 48), 2 * stale)
        torch.testing.assert_close(model.blocks[1].attn._rel_table("w", 48, 48), 2 * stale_rel)


def test_training_gradients_reach_resized_position_tables():
    model = VisionTokenizer(TINY).train()
    model(torch.randn(1, 3, 768, 768)).square().mean().backward()
    for name in ("pos_embed", "blocks.1.attn.rel_pos_h", "blocks.1.attn.rel_pos_w",
                 "blocks.0.attn.rel_pos_h", "net_3.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
