"""Hyper-parameters of every module, as plain dataclasses, and the named presets.

Values of the `official` preset are those of the released DeepSeek-OCR 2 checkpoint (the vision stack as
hard-coded in the release's `deepencoderv2/` code, the decoder from its `config.json` and the DeepseekV2 config
defaults it relies on); the library never reads Hydra, so configs are plain data that
round-trip through `to_dict` / `from_dict` (and therefore through `config.json` and OmegaConf).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The `model_type` of ocr2's own config.json (the official layout's is `deepseek_vl_v2`, the transformers port's
# `deepseek_ocr2`).
MODEL_TYPE = "ocr2"


@dataclass
class VisionTokenizerConfig:
    """SAM ViT-B style windowed ViT + neck + 16x convolutional compressor (paper §3.2.1)."""

    image_size: int = 1024  # size the absolute position table is trained for (64x64 grid at patch 16)
    patch_size: int = 16
    width: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    neck_channels: int = 256
    # net_2 / net_3: two stride-2 convs; the last width equals the encoder's hidden size (no projection).
    compressor_channels: tuple[int, ...] = (512, 896)
    layer_norm_eps: float = 1e-6

    @property
    def downsample(self) -> int:
        """Pixels per visual token along one side: patch size times 2 per stride-2 conv."""
        return self.patch_size * 2 ** len(self.compressor_channels)

    def tokens_for(self, view_size: int) -> int:
        side = view_size // self.downsample
        return side * side


@dataclass
class EncoderConfig:
    """DeepEncoder V2: a Qwen2-0.5B stack used as an encoder over [visual ; flow queries] (paper §3.2.2)."""

    hidden_size: int = 896
    num_layers: int = 24
    num_heads: int = 14
    num_kv_heads: int = 2
    intermediate_size: int = 4864
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    # Name of a MaskSpec in ocr2.modeling.masks (the reading-order ablation axis).
    mask: str = "causal_flow"
    # The position axis beside the mask (ocr2/modeling/positions.py); the defaults are the release's.
    visual_positions: str = "raster"  # raster (1-D) | 2d (row/column RoPE)
    query_positions: str = "sequential"  # sequential (n..2n-1) | shared (one position) | 2d (rows after the grid)
    shuffle_visual: bool = False  # training only: each sample's visual tokens in a random sequence order
    # Number of flow queries relative to the number of visual tokens of a view (paper: equal, 1.0).
    query_ratio: float = 1.0
    # View sizes (pixels) that own a learnable flow-query table; all crops of a size share one table.
    query_view_sizes: tuple[int, ...] = (768, 1024)
    residual: str = "residual"  # residual | hc | mhc (hyper-connections, ocr2.modeling.mhc)
    hc_streams: int = 4


@dataclass
class DecoderConfig:
    """DeepSeek-MoE decoder (DeepSeek-3B-A570M, MHA, dense layer 0 then MoE layers)."""

    vocab_size: int = 129_280
    hidden_size: int = 1280
    num_layers: int = 12
    num_heads: int = 10
    num_kv_heads: int = 10
    intermediate_size: int = 6848  # dense SwiGLU of the first `first_k_dense` layers
    first_k_dense: int = 1
    n_routed_experts: int = 64
    n_shared_experts: int = 2  # implemented as one SwiGLU of width n_shared * moe_intermediate_size
    moe_intermediate_size: int = 896
    num_experts_per_tok: int = 6
    norm_topk_prob: bool = False  # the release does NOT renormalise the top-k softmax weights
    routed_scaling_factor: float = 1.0
    aux_loss_alpha: float = 0.001  # DeepSeek-V2 sequence-level balance loss weight (training only)
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10_000.0
    max_position_embeddings: int = 8192
    residual: str = "residual"  # residual | hc | mhc (hyper-connections, ocr2.modeling.mhc)
    hc_streams: int = 4


@dataclass
class OCR2Config:
    vision: VisionTokenizerConfig = field(default_factory=VisionTokenizerConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    global_view_size: int = 1024
    crop_size: int = 768
    image_token_id: int = 128_815
    bos_token_id: int = 0
    eos_token_id: int = 1
    pad_token_id: int = 2
    # eager | sdpa | sdpa_split | flex | flash | auto (ocr2.modeling.attention); eager is the reference.
    attn_implementation: str = "sdpa"
    initializer_range: float = 0.02

    # ------------------------------------------------------------------ views and token budget
    def num_queries(self, view_size: int) -> int:
        return max(1, round(self.encoder.query_ratio * self.vision.tokens_for(view_size)))

    def view_output_tokens(self, view_size: int) -> int:
        """Encoder outputs one view hands to the decoder: its flow queries, or its visual tokens when the mask
        spec keeps those (e.g. the v1-style `raster` variant)."""
        from ocr2.modeling.masks import get_mask_spec

        if get_mask_spec(self.encoder.mask).keep == "queries":
            return self.num_queries(view_size)
        return self.vision.tokens_for(view_size)

    def image_token_count(self, num_crops: int, global_size: int | None = None, crop_size: int | None = None) -> int:
        """Decoder positions one image occupies: crops, global view, view separator (144·k + 256 + 1 in the
        release). `global_size` / `crop_size` override the config's view sizes (stage 1 trains on single 768² or
        1024² views; v1's resolution modes use 512-1280² views and 640² tiles)."""
        glob = self.global_view_size if global_size is None else global_size
        crops = num_crops * self.view_output_tokens(crop_size or self.crop_size) if num_crops else 0
        return crops + self.view_output_tokens(glob) + 1

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OCR2Config":
        """A dict of `to_dict`'s shape, or of `config.json`'s (which also carries `model_type`; older files lack it)."""
        d = dict(d)
        model_type = d.pop("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            raise ValueError(f"model_type is {model_type!r}, not {MODEL_TYPE!r} (not an ocr2 config)")
        subs = {"vision": VisionTokenizerConfig, "encoder": EncoderConfig, "decoder": DecoderConfig}
        kwargs: dict[str, Any] = {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown OCR2Config fields: {sorted(unknown)}")
        for name, value in d.items():
            if name in subs:
                sub_cls = subs[name]
                sub_known = {f.name for f in dataclasses.fields(sub_cls)}
                bad = set(value) - sub_known
                if bad:
                    raise ValueError(f"unknown {name} config fields: {sorted(bad)}")
                value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
                defaults = sub_cls()
                for k, v in value.items():
                    _check_type(f"{name}.{k}", v, getattr(defaults, k))
                kwargs[name] = sub_cls(**value)
            else:
                _check_type(name, value, getattr(_DEFAULTS, name))
                kwargs[name] = value
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        # `model_type` first, as in every config.json, so tools that dispatch on it (transformers' AutoConfig,
        # ocr2's own layout detection) see whose config this is; `to_dict` stays the plain fields (Hydra reads it).
        Path(path).write_text(json.dumps({"model_type": MODEL_TYPE, **self.to_dict()}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "OCR2Config":
        """A config.json written by `save`: every field must be there (a missing section must not silently become
        the 3.4-billion-parameter official default) and of its field's type."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not an ocr2 config (a JSON object expected, got {type(data).__name__})")
        if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:  # before the field check: its list would hide this
            raise ValueError(f"{path}: model_type is {data['model_type']!r}, not {MODEL_TYPE!r} (not an ocr2 config; "
                             f"OCR2Model.from_pretrained reads the official and transformers-port layouts)")
        missing = [k for k in _DEFAULTS.to_dict() if k not in data]
        for name in ("vision", "encoder", "decoder"):
            if isinstance(data.get(name), dict):
                missing += [f"{name}.{k}" for k in _DEFAULTS.to_dict()[name]
                            if k not in data[name] and f"{name}.{k}" not in ADDED_LATER]
        if missing:
            raise ValueError(f"{path}: not a complete ocr2 config: missing {missing}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: not an ocr2 config ({e})") from e

    # ------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "OCR2Config":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        cfg = PRESETS[name]()
        return dataclasses.replace(cfg, **overrides) if overrides else cfg


def _official() -> OCR2Config:
    return OCR2Config()


def _tiny() -> OCR2Config:
    """A few-million-parameter model with the official geometry (1024 global, 768 crops, 256/144 tokens).

    Small widths everywhere, but every mechanism of the official model is present: windowed and global SAM
    blocks, GQA with q/k/v bias, a dense first decoder layer followed by MoE layers with shared experts.
    Its vocabulary is the built-in byte-level tokenizer's (ocr2.processing.text), so special ids differ from
    the official tokenizer's.
    """
    return OCR2Config(
        vision=VisionTokenizerConfig(width=32, depth=2, num_heads=2, global_attn_indexes=(1,),
                                     neck_channels=32, compressor_channels=(48, 64)),
        encoder=EncoderConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                              intermediate_size=128),
        decoder=DecoderConfig(vocab_size=271,  # ByteTokenizer: 15 special tokens + 256 bytes
                              hidden_size=64, num_layers=3, num_heads=4, num_kv_heads=4,
                              intermediate_size=192, first_k_dense=1, n_routed_experts=8, n_shared_experts=2,
                              moe_intermediate_size=32, num_experts_per_tok=2),
        image_token_id=3,
    )


PRESETS = {"official": _official, "tiny": _tiny}


def _check_type(name: str, value: Any, default: Any) -> None:
    """`value` must have the type of the field's default (ints for counts, floats may be given as ints, tuples of
    ints for index lists), so a wrong type is an error naming the field, not a traceback deep in the model."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, tuple):
        ok = isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    else:
        ok = True
    if not ok:
        expected = "a tuple of ints" if isinstance(default, tuple) else type(default).__name__
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


_DEFAULTS = OCR2Config()

# Fields added after checkpoints were already written, whose default is what those checkpoints did: a config.json
# without them is complete (they take the default).
ADDED_LATER = frozenset({"encoder.visual_positions", "encoder.query_positions", "encoder.shuffle_visual"})
