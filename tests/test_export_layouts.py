"""Writing a model in the official and transformers-port layouts (ocr2/layouts.py): what each reader gets back.

- hf: the transformers port (`transformers.models.deepseek_ocr2`) loads the folder with its own classes and Auto
  classes, and gives ocr2's logits (fp32, eager attention, max abs diff <= 1e-5);
- official: ocr2 reads the release's key names and config.json back to identical logits and the same config.
Tiny random models with the official view geometry (1024² global -> 256 tokens, 768² crops -> 144), no download.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors import safe_open

from ocr2 import OCR2Config, OCR2Model
from ocr2.layouts import LayoutError, write_layout
from ocr2.processing.reading import PROMPT_FREE_OCR, ReadingRecipe
from ocr2.processing.text import ByteTokenizer
from export_helpers import batch_with_crops, random_tiny

TOL = 1e-5


def _names(folder) -> dict[str, torch.dtype]:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    out = {}
    for file in set(index["weight_map"].values()):
        with safe_open(str(folder / file), framework="pt") as h:
            out.update({k: h.get_tensor(k).dtype for k in h.keys()})
    assert out.keys() == index["weight_map"].keys()
    return out


@pytest.fixture(scope="module")
def model():
    return random_tiny()


@pytest.fixture(scope="module")
def ours_logits(model):
    ids, views, crops, num = batch_with_crops(model.config)
    with torch.no_grad():
        return model(ids, global_views=views, crops=crops, num_crops=num).logits


# ---------------------------------------------------------------------------------------------------- hf
@pytest.fixture(scope="module")
def hf_dir(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf")
    write_layout("hf", model.config, model.state_dict(), out, reading=ReadingRecipe(prompt=PROMPT_FREE_OCR))
    return out


@pytest.fixture(scope="module")
def port(hf_dir):
    from transformers.models.deepseek_ocr2 import DeepseekOcr2ForConditionalGeneration

    loaded, info = DeepseekOcr2ForConditionalGeneration.from_pretrained(str(hf_dir), attn_implementation="eager",
                                                                        output_loading_info=True)
    return loaded.eval(), info


def test_hf_folder_loads_in_the_port_with_every_tensor_and_nothing_else(port):
    _, info = port
    assert [set(info[k]) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")] == [set(), set(), set()]


def test_hf_folder_gives_ocr2_logits_in_the_port(model, port, ours_logits):
    ids, views, crops, num = batch_with_crops(model.config)
    with torch.no_grad():
        ref = port[0](input_ids=ids, pixel_values=views, pixel_values_local=crops, num_local_patches=num).logits
    assert (ref - ours_logits).abs().max().item() <= TOL


def test_hf_config_json_is_the_ports_with_model_type(hf_dir):
    from transformers import AutoConfig

    raw = json.loads((hf_dir / "config.json").read_text())
    assert (raw["model_type"], raw["architectures"]) == ("deepseek_ocr2", ["DeepseekOcr2ForConditionalGeneration"])
    cfg = AutoConfig.from_pretrained(str(hf_dir))
    assert type(cfg).__name__ == "DeepseekOcr2Config" and cfg.image_token_id == 3


def test_hf_folder_loads_with_the_auto_model_class(hf_dir, model, ours_logits):
    from transformers import AutoModelForImageTextToText

    auto = AutoModelForImageTextToText.from_pretrained(str(hf_dir), attn_implementation="eager").eval()
    assert type(auto).__name__ == "DeepseekOcr2ForConditionalGeneration"
    ids, views, crops, num = batch_with_crops(model.config)
    with torch.no_grad():
        ref = auto(input_ids=ids, pixel_values=views, pixel_values_local=crops, num_local_patches=num).logits
    assert (ref - ours_logits).abs().max().item() <= TOL


def test_hf_experts_are_fused_gate_rows_first(hf_dir, model):
    with safe_open(str(hf_dir / "model-00001-of-00001.safetensors"), framework="pt") as h:
        fused = h.get_tensor("model.language_model.layers.1.mlp.experts.gate_up_proj")
    experts = model.decoder.layers[1].mlp.experts
    assert torch.equal(fused, torch.cat([experts.gate_proj, experts.up_proj], dim=1))


def test_ocr2_reads_its_hf_export_back_to_identical_logits(hf_dir, model, ours_logits):
    back = OCR2Model.from_pretrained(hf_dir, attn_implementation="eager")
    assert back.config == model.config
    assert back.reading.prompt == PROMPT_FREE_OCR
    ids, views, crops, num = batch_with_crops(model.config)
    with torch.no_grad():
        assert torch.equal(back(ids, global_views=views, crops=crops, num_crops=num).logits, ours_logits)


def test_hf_generation_config_has_the_models_special_ids(hf_dir, model):
    raw = json.loads((hf_dir / "generation_config.json").read_text())
    assert (raw["bos_token_id"], raw["eos_token_id"], raw["pad_token_id"]) == (0, 1, 2)


def _hf_tokenizer(folder, vocab_size: int) -> None:
    """A transformers tokenizer over the tiny model's vocabulary: the byte tokenizer's special tokens at its ids
    (`<image>` = 3), the rest word-level stand-ins."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ByteTokenizer().special_tokens
    vocab = {t: i for i, t in enumerate(specials)} | {f"w{i}": i for i in range(len(specials), vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=f"w{vocab_size - 1}"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(specials)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=specials[0], eos_token=specials[1],
                            pad_token=specials[2]).save_pretrained(str(folder))


def test_hf_folder_loads_with_auto_processor_whose_inputs_give_ocr2_logits(model, tmp_path):
    from PIL import Image
    from transformers import AutoProcessor
    from transformers.models.deepseek_ocr2 import DeepseekOcr2ForConditionalGeneration

    source = tmp_path / "source"
    _hf_tokenizer(source, model.config.decoder.vocab_size)
    assert write_layout("hf", model.config, model.state_dict(), tmp_path / "hf", tokenizer_dir=source) == []
    processor = AutoProcessor.from_pretrained(str(tmp_path / "hf"))
    page = Image.new("RGB", (1600, 800), (250, 250, 250))  # 2:1, wider than a crop: the release's 2x1 crops
    inputs = processor(images=page, text="<image>\nw20 w21", return_tensors="pt")
    k = int(inputs["num_local_patches"][0])
    assert k == 2 and int((inputs["input_ids"] == 3).sum()) == model.config.image_token_count(k)
    port = DeepseekOcr2ForConditionalGeneration.from_pretrained(str(tmp_path / "hf"), attn_implementation="eager")
    with torch.no_grad():
        ref = port.eval()(**inputs).logits
        got = model(inputs["input_ids"], global_views=inputs["pixel_values"], crops=inputs["pixel_values_local"],
                    num_crops=inputs["num_local_patches"].tolist()).logits
    assert (ref - got).abs().max().item() <= TOL


def test_hf_without_a_transformers_tokenizer_says_autoprocessor_cannot_load(model, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    ByteTokenizer().save(source)
    notes = write_layout("hf", model.config, model.state_dict(), tmp_path / "hf", tokenizer_dir=source)
    assert any("AutoProcessor cannot load" in n for n in notes)
    assert (tmp_path / "hf" / "ocr2_tokenizer.json").exists()
    assert (tmp_path / "hf" / "preprocessor_config.json").exists()


@pytest.mark.parametrize("change,reason", [
    (dict(encoder={"mask": "raster"}), "encoder.mask='raster'"),
    (dict(decoder={"norm_topk_prob": True}), "norm_topk_prob"),
    (dict(global_view_size=768), "views 768² global"),
    (dict(decoder={"residual": "mhc"}), "decoder.residual='mhc'"),
])
def test_hf_refuses_what_the_port_would_compute_differently_before_writing(tmp_path, change, reason):
    base = OCR2Config.from_preset("tiny")
    cfg = dataclasses.replace(base, **{k: dataclasses.replace(getattr(base, k), **v) if isinstance(v, dict) else v
                                       for k, v in change.items()})
    with pytest.raises(LayoutError, match=reason):
        write_layout("hf", cfg, OCR2Model(cfg).state_dict(), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------- official
@pytest.fixture(scope="module")
def official_dir(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("official")
    source = tmp_path_factory.mktemp("source")
    ByteTokenizer().save(source)
    notes = write_layout("official", model.config, model.state_dict(), out, tokenizer_dir=source)
    return out, notes


def test_official_folder_reads_back_to_identical_logits_and_config(official_dir, model, ours_logits):
    back = OCR2Model.from_pretrained(official_dir[0], attn_implementation="eager")
    assert back.config == model.config
    ids, views, crops, num = batch_with_crops(model.config)
    with torch.no_grad():
        assert torch.equal(back(ids, global_views=views, crops=crops, num_crops=num).logits, ours_logits)


def test_official_folder_has_the_release_key_names_one_tensor_per_expert(official_dir, model):
    names = _names(official_dir[0])
    e = model.config.decoder.n_routed_experts
    assert {f"model.layers.1.mlp.experts.{i}.{p}.weight" for i in range(e) for p in ("gate_proj", "up_proj",
                                                                                   "down_proj")} <= names.keys()
    assert {"model.view_seperator", "model.sam_model.net_3.weight", "model.qwen2_model.query_768.weight",
            "model.qwen2_model.model.model.norm.weight", "model.projector.layers.weight",
            "lm_head.weight"} <= names.keys()
    assert all(k.startswith(("model.", "lm_head.")) for k in names)
    assert not any(".experts.gate_proj" in k or k.endswith("experts.down_proj") for k in names)


def test_official_folder_is_one_shard_with_an_index_like_the_release(official_dir):
    files = sorted(p.name for p in official_dir[0].glob("*.safetensors"))
    assert files == ["model-00001-of-00001.safetensors"]
    assert (official_dir[0] / "model.safetensors.index.json").exists()


def test_official_config_json_is_the_releases_with_ocr2_config(official_dir, model):
    raw = json.loads((official_dir[0] / "config.json").read_text())
    assert (raw["model_type"], raw["architectures"], raw["torch_dtype"]) == \
        ("deepseek_vl_v2", ["DeepseekOCR2ForCausalLM"], "float32")
    assert raw["language_config"]["hidden_size"] == model.config.decoder.hidden_size == raw["hidden_size"]
    assert OCR2Config.from_dict(raw["ocr2_config"]) == model.config


def test_official_folder_carries_the_tokenizer_and_the_reading_recipe(official_dir):
    assert (official_dir[0] / "ocr2_tokenizer.json").exists() and (official_dir[0] / "reading.json").exists()


def test_official_export_of_a_non_official_size_says_only_ocr2_reads_its_vision_stack(official_dir):
    assert any("vision sizes differ" in n and "only ocr2 reads" in n for n in official_dir[1])


def test_official_in_bfloat16_stores_bfloat16_and_says_so(model, tmp_path):
    write_layout("official", model.config, model.state_dict(), tmp_path, dtype=torch.bfloat16)
    assert set(_names(tmp_path).values()) == {torch.bfloat16}
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
    back = OCR2Model.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert torch.equal(back.lm_head.weight, model.lm_head.weight.to(torch.bfloat16))


def test_official_refuses_hyper_connection_streams_before_writing(tmp_path):
    cfg = OCR2Config.from_preset("tiny")
    cfg = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, residual="hc"))
    with pytest.raises(LayoutError, match="encoder.residual='hc'"):
        write_layout("official", cfg, OCR2Model(cfg).state_dict(), tmp_path / "out")
    assert not (tmp_path / "out").exists()
