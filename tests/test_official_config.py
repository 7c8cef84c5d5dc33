"""The release's config.json (`model_type: deepseek_vl_v2`) <-> OCR2Config, and official-layout folders loading with
the sizes their config.json gives.

`release_config()` is a config.json of the release's shape (its keys and values, as listed in the release's
`config.json`: decoder in `language_config`, the same keys again at the top level, a stale `vision_config`)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model
from ocr2.keymaps import official
from ocr2.keymaps.official_config import OCR2_KEY, config_from_official, config_to_official
from ocr2.safetensors_stream import write_sharded
from ocr2.weights import CheckpointError

RELEASE_LANGUAGE = {
    "bos_token_id": 0, "eos_token_id": 1, "first_k_dense_replace": 1, "hidden_size": 1280, "intermediate_size": 6848,
    "kv_lora_rank": None, "lm_head": True, "max_position_embeddings": 8192, "moe_intermediate_size": 896,
    "n_group": 1, "n_routed_experts": 64, "n_shared_experts": 2, "num_attention_heads": 10, "num_experts_per_tok": 6,
    "num_hidden_layers": 12, "num_key_value_heads": 10, "q_lora_rank": None, "qk_nope_head_dim": 0,
    "qk_rope_head_dim": 0, "rm_head": False, "topk_group": 1, "topk_method": "greedy", "use_mla": False,
    "v_head_dim": 0, "vocab_size": 129280,
}


def release_config(**language) -> dict:
    lang = {**RELEASE_LANGUAGE, **language}
    return {
        "architectures": ["DeepseekOCR2ForCausalLM"], "candidate_resolutions": [[1024, 1024]],
        "global_view_pos": "head", "model_type": "deepseek_vl_v2", "tile_tag": "2D", "torch_dtype": "bfloat16",
        "language_config": {"architectures": ["DeepseekV2ForCausalLM"], "torch_dtype": "bfloat16", **lang},
        "projector_config": {"input_dim": 896, "model_type": "mlp_projector", "n_embed": 1280,
                             "projector_type": "linear"},
        "vision_config": {"image_size": 1024, "model_name": "deepencoderv2",
                          "width": {"sam_vit_b": {"downsample_channels": [512, 1024]}}},  # stale, as released
        **lang,
    }


# ---------------------------------------------------------------------------------------------------- reading
def test_the_release_config_gives_the_official_preset():
    assert config_from_official(release_config()) == OCR2Config.from_preset("official")


def test_decoder_sizes_come_from_language_config():
    cfg = config_from_official(release_config(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                              num_key_value_heads=2, n_routed_experts=16, vocab_size=1000,
                                              moe_intermediate_size=64, intermediate_size=512, num_experts_per_tok=3,
                                              n_shared_experts=1, first_k_dense_replace=2))
    d = cfg.decoder
    assert (d.hidden_size, d.num_layers, d.num_heads, d.num_kv_heads, d.n_routed_experts, d.vocab_size) == \
        (256, 4, 4, 2, 16, 1000)
    assert (d.moe_intermediate_size, d.intermediate_size, d.num_experts_per_tok, d.n_shared_experts,
            d.first_k_dense) == (64, 512, 3, 1, 2)


def test_without_ocr2_config_the_vision_stack_is_the_official_presets():
    cfg = config_from_official(release_config(hidden_size=256))
    official_cfg = OCR2Config.from_preset("official")
    assert (cfg.vision, cfg.encoder) == (official_cfg.vision, official_cfg.encoder)


def test_keys_the_release_leaves_out_take_deepseek_v2_defaults():
    raw = release_config()
    for key in ("max_position_embeddings", "first_k_dense_replace"):
        del raw[key], raw["language_config"][key]
    d = config_from_official(raw).decoder
    assert (d.rope_theta, d.norm_topk_prob, d.routed_scaling_factor, d.rms_norm_eps, d.aux_loss_alpha) == \
        (10_000.0, False, 1.0, 1e-6, 0.001)
    assert (d.max_position_embeddings, d.first_k_dense) == (2048, 0)


def test_keys_spelled_out_in_language_config_are_read():
    raw = release_config(rope_theta=50_000.0, norm_topk_prob=True, routed_scaling_factor=2.0)
    d = config_from_official(raw).decoder
    assert (d.rope_theta, d.norm_topk_prob, d.routed_scaling_factor) == (50_000.0, True, 2.0)


def test_top_level_keys_stand_in_for_a_missing_language_config():
    raw = release_config(hidden_size=320)
    del raw["language_config"]
    assert config_from_official(raw).decoder.hidden_size == 320


def test_mla_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="use_mla"):
        config_from_official(release_config(use_mla=True, kv_lora_rank=512))


def test_a_missing_decoder_size_is_an_error_naming_it():
    raw = release_config()
    del raw["language_config"]["hidden_size"], raw["hidden_size"]
    with pytest.raises(ValueError, match="hidden_size"):
        config_from_official(raw)


def test_ocr2_config_and_language_config_that_disagree_are_refused():
    raw = config_to_official(OCR2Config.from_preset("tiny"), "float32")
    raw["language_config"]["hidden_size"] = 128
    with pytest.raises(ValueError, match="disagree.*hidden_size"):
        config_from_official(raw)


# ---------------------------------------------------------------------------------------------------- writing
def test_the_official_preset_is_written_with_the_release_keys_and_values():
    raw = config_to_official(OCR2Config.from_preset("official"), "bfloat16")
    assert (raw["model_type"], raw["architectures"], raw["torch_dtype"]) == \
        ("deepseek_vl_v2", ["DeepseekOCR2ForCausalLM"], "bfloat16")
    lang = {k: v for k, v in raw["language_config"].items() if k not in ("architectures", "auto_map", "torch_dtype")}
    assert lang == RELEASE_LANGUAGE
    assert {k: raw[k] for k in RELEASE_LANGUAGE} == RELEASE_LANGUAGE  # the release's duplicated top-level keys


def test_values_off_the_deepseek_v2_defaults_are_spelled_out():
    cfg = OCR2Config.from_preset("tiny")
    cfg = dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, rope_theta=20_000.0, norm_topk_prob=True))
    lang = config_to_official(cfg, "float32")["language_config"]
    assert (lang["rope_theta"], lang["norm_topk_prob"]) == (20_000.0, True)
    assert "rms_norm_eps" not in lang  # at the default, left out as the release does


def test_a_non_official_config_round_trips_through_the_release_format():
    cfg = OCR2Config.from_preset("tiny")
    cfg = dataclasses.replace(cfg, pad_token_id=7, decoder=dataclasses.replace(cfg.decoder, rope_theta=20_000.0))
    raw = json.loads(json.dumps(config_to_official(cfg, "float32")))
    assert config_from_official(raw) == cfg


# ---------------------------------------------------------------------------------------------------- folders
def _official_folder(tmp_path, model: OCR2Model, raw: dict):
    unexpected: list[str] = []
    write_sharded(tmp_path, official.to_official(model.state_dict(), None, unexpected))
    assert not unexpected
    (tmp_path / "config.json").write_text(json.dumps(raw))
    return tmp_path


def _tiny_language(cfg: OCR2Config) -> dict:
    lang = config_to_official(cfg, "float32")["language_config"]
    return {k: v for k, v in lang.items() if k not in ("architectures", "auto_map", "torch_dtype")}


def test_a_release_style_folder_of_another_vision_size_says_config_json_does_not_describe_it(tmp_path):
    """Only language_config, no ocr2_config: the decoder's shapes match (they come from language_config); the
    vision stack's cannot, and the error says why."""
    tiny = OCR2Model(OCR2Config.from_preset("tiny"))
    folder = _official_folder(tmp_path, tiny, release_config(**_tiny_language(tiny.config)))
    with pytest.raises(CheckpointError) as err:
        OCR2Model.from_pretrained(folder)
    message = str(err.value)
    assert "vision stack (SAM, DeepEncoder V2, projector input) is not described in config.json" in message
    mismatched = message.split("shape mismatches", 1)[1]
    assert "vision_tokenizer." in mismatched and "'decoder." not in mismatched


def test_a_release_style_folder_loads_its_decoder_shapes_from_language_config(tmp_path):
    """The vision stack described by an ocr2_config block of vision and encoder only; the decoder by
    language_config alone."""
    torch.manual_seed(0)
    tiny = OCR2Model(OCR2Config.from_preset("tiny")).eval()
    raw = release_config(**_tiny_language(tiny.config))
    raw[OCR2_KEY] = {k: v for k, v in tiny.config.to_dict().items() if k not in ("decoder",)}
    loaded = OCR2Model.from_pretrained(_official_folder(tmp_path, tiny, raw))
    assert loaded.config.decoder == tiny.config.decoder
    ids = torch.tensor([[0, 20, 21, 22]])
    assert torch.equal(loaded(ids).logits, tiny(ids).logits)


def test_an_official_layout_folder_with_an_unknown_model_type_is_an_error_naming_it(tmp_path):
    tiny = OCR2Model(OCR2Config.from_preset("tiny"))
    folder = _official_folder(tmp_path, tiny, {"model_type": "llama"})
    with pytest.raises(CheckpointError, match="model_type 'llama' is not one ocr2 reads"):
        OCR2Model.from_pretrained(folder)


def test_official_key_names_beside_an_ocr2_config_json_load_with_it(tmp_path):
    torch.manual_seed(0)
    tiny = OCR2Model(OCR2Config.from_preset("tiny")).eval()
    folder = _official_folder(tmp_path, tiny, {})
    tiny.config.save(folder / "config.json")
    assert OCR2Model.from_pretrained(folder).config == tiny.config
