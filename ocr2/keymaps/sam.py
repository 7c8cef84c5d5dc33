"""Key map: transformers-port SAM encoder (`DeepseekOcr2SamVisionEncoder`) -> ocr2 `VisionTokenizer`.

Keys are relative to the SAM module on both sides, e.g. `layers.0.layer_norm1.weight` -> `blocks.0.norm1.weight`.
Our names follow the official checkpoint (`model.sam_model.*`), so this map is also the port -> official map up to
the prefix. The port's two compressor convs live under `proj.conv1/conv2`; the release calls them `net_2/net_3`.
`ours_to_port` is the inverse (used to export the port's layout).
"""

from __future__ import annotations

from ocr2.keymaps.rules import Rules, apply_rules, compile_rules

_RULES: Rules = compile_rules((
    (r"^pos_embed$", "pos_embed"),
    (r"^patch_embed\.projection\.(weight|bias)$", r"patch_embed.proj.\1"),
    (r"^layers\.(\d+)\.layer_norm([12])\.(weight|bias)$", r"blocks.\1.norm\2.\3"),
    (r"^layers\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)$", r"blocks.\1.attn.\2.\3"),
    (r"^layers\.(\d+)\.attn\.(rel_pos_h|rel_pos_w)$", r"blocks.\1.attn.\2"),
    (r"^layers\.(\d+)\.mlp\.(lin1|lin2)\.(weight|bias)$", r"blocks.\1.mlp.\2.\3"),
    (r"^neck\.conv1\.weight$", "neck.0.weight"),
    (r"^neck\.layer_norm1\.(weight|bias)$", r"neck.1.\1"),
    (r"^neck\.conv2\.weight$", "neck.2.weight"),
    (r"^neck\.layer_norm2\.(weight|bias)$", r"neck.3.\1"),
    (r"^proj\.conv1\.weight$", "net_2.weight"),
    (r"^proj\.conv2\.weight$", "net_3.weight"),
))


def port_to_ours(key: str) -> str:
    """Our name for a transformers-port SAM key; KeyError (naming the key) for anything unknown."""
    return apply_rules(_RULES, key)


_INVERSE: Rules = compile_rules((
    (r"^pos_embed$", "pos_embed"),
    (r"^patch_embed\.proj\.(weight|bias)$", r"patch_embed.projection.\1"),
    (r"^blocks\.(\d+)\.norm([12])\.(weight|bias)$", r"layers.\1.layer_norm\2.\3"),
    (r"^blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)$", r"layers.\1.attn.\2.\3"),
    (r"^blocks\.(\d+)\.attn\.(rel_pos_h|rel_pos_w)$", r"layers.\1.attn.\2"),
    (r"^blocks\.(\d+)\.mlp\.(lin1|lin2)\.(weight|bias)$", r"layers.\1.mlp.\2.\3"),
    (r"^neck\.0\.weight$", "neck.conv1.weight"),
    (r"^neck\.1\.(weight|bias)$", r"neck.layer_norm1.\1"),
    (r"^neck\.2\.weight$", "neck.conv2.weight"),
    (r"^neck\.3\.(weight|bias)$", r"neck.layer_norm2.\1"),
    (r"^net_2\.weight$", "proj.conv1.weight"),
    (r"^net_3\.weight$", "proj.conv2.weight"),
))


def ours_to_port(key: str) -> str:
    """The transformers-port name of one of our SAM keys (relative to the module); KeyError for anything unknown."""
    return apply_rules(_INVERSE, key)
