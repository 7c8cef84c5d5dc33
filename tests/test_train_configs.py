"""Hydra composition: every config group and experiment composes into a valid model and DeepSpeed config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from train.builders import build_deepspeed_config, build_model_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_into_a_model_config(experiment):
    from ocr2.config import OCR2Config

    cfg = _compose([f"experiment={experiment}"])
    # model=checkpoint experiments (finetune*) build on the init_from checkpoint's config; a tiny one stands in.
    build_model_config(cfg.model, OCR2Config.from_preset("tiny"))


@pytest.mark.parametrize("model", ["tiny", "micro", "small", "official"])
def test_model_group_builds(model):
    mc = build_model_config(_compose([f"model={model}"]).model)
    assert mc.encoder.mask == "causal_flow"


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_micro_heads_are_32_wide(part):
    # With 16-dim heads the CPU model learnt to pick out a visual slot far more slowly (docs/demo.md, "Head dimension").
    sub = getattr(build_model_config(_compose(["model=micro"]).model), part)
    assert sub.hidden_size // sub.num_heads == 32


def test_mask_is_one_override():
    mc = build_model_config(_compose(["model.encoder.mask=raster"]).model)
    assert mc.encoder.mask == "raster"


@pytest.mark.parametrize("scheme, visual, query", [("official", "raster", "sequential"), ("shared", "raster", "shared"),
                                                   ("2d", "2d", "2d")])
def test_a_position_scheme_is_one_override(scheme, visual, query):
    # configs/positions/: one name for the encoder's (visual, query) positions, so a sweep crosses them with masks
    enc = build_model_config(_compose(["experiment=order_ablation", f"+positions={scheme}"]).model).encoder
    assert (enc.visual_positions, enc.query_positions) == (visual, query)


def test_unknown_model_field_is_an_error():
    with pytest.raises(ValueError, match="no_such_field"):
        build_model_config(_compose(["+model.encoder.no_such_field=1"]).model)


@pytest.mark.parametrize("zero", [0, 1, 2, 3])
def test_deepspeed_config_is_concrete(zero):
    trainer = _compose([f"trainer={'cpu' if zero == 0 else f'zero{zero}'}", "trainer.grad_accum=4"]).trainer
    ds = build_deepspeed_config(trainer, world_size=8, dtype=torch.float32)
    assert ds["zero_optimization"]["stage"] == zero
    assert ds["train_batch_size"] == trainer.micro_batch_size * 4 * 8
    assert "auto" not in repr(ds)


@pytest.mark.parametrize("stage,frozen", [("stage1_encoder", []), ("stage2_query", ["vision_tokenizer"]),
                                          ("stage3_decoder", ["vision_tokenizer", "encoder"])])
def test_stages_freeze_what_the_paper_freezes(stage, frozen):
    assert list(_compose([f"stage={stage}"]).stage.frozen) == frozen


# ---------------------------------------------------------------- configs/model: a preset plus deltas, nothing restated
# model=checkpoint is not a preset plus deltas but the init_from checkpoint's config (tests/test_finetune_config.py).
MODELS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml") if p.stem != "checkpoint")
# Each model's resolved config as it was when the files still listed every field (checked then for every model group
# and experiment: the composed cfg.model and build_model_config equal before and after the rewrite). tiny and
# official are their presets; micro and small are tiny with these fields changed.
RESOLVED_DELTAS = {
    "tiny": ("tiny", {}),
    "official": ("official", {}),
    "micro": ("tiny", {"global_view_size": 256, "crop_size": 192, "encoder.query_view_sizes": (192, 256),
                       "encoder.num_heads": 2, "decoder.num_heads": 2, "decoder.num_kv_heads": 2}),
    "small": ("tiny", {"vision.width": 192, "vision.depth": 4, "vision.num_heads": 4,
                       "vision.global_attn_indexes": (1, 3), "vision.neck_channels": 128,
                       "vision.compressor_channels": (192, 256), "encoder.hidden_size": 256, "encoder.num_layers": 4,
                       "encoder.num_heads": 8, "encoder.intermediate_size": 768, "decoder.hidden_size": 256,
                       "decoder.num_layers": 4, "decoder.intermediate_size": 768, "decoder.n_routed_experts": 16,
                       "decoder.moe_intermediate_size": 128, "decoder.num_experts_per_tok": 4}),
}


def _model_file(name: str) -> tuple[str, dict]:
    """(preset, deltas by dotted path) of configs/model/<name>.yaml."""
    import yaml

    data = yaml.safe_load((CONFIGS / "model" / f"{name}.yaml").read_text()) or {}
    defaults = data.pop("defaults", [])
    presets = [entry["preset@_here_"] for entry in defaults if isinstance(entry, dict) and "preset@_here_" in entry]
    assert len(presets) == 1 and defaults == [{"preset@_here_": presets[0]}, "_self_"], \
        f"model/{name}.yaml: defaults must be [preset@_here_: <preset>, _self_], got {defaults}"
    assert "preset" not in data, f"model/{name}.yaml: the preset is named once, in its defaults"

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
        return out

    return presets[0], flat(data)


def _field(cfg, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_every_model_file_is_covered():
    assert MODELS == sorted(RESOLVED_DELTAS)


@pytest.mark.parametrize("model", MODELS)
def test_model_yaml_states_only_real_fields_that_differ_from_its_preset(model):
    import dataclasses

    from ocr2.config import PRESETS, OCR2Config

    preset, deltas = _model_file(model)
    assert preset in PRESETS
    base = OCR2Config.from_preset(preset)
    for path, value in deltas.items():
        parent, _, leaf = path.rpartition(".")
        owner = _field(base, parent) if parent else base
        assert dataclasses.is_dataclass(owner) and leaf in {f.name for f in dataclasses.fields(owner)}, \
            f"model/{model}.yaml: {path} is not an OCR2Config field"
        default = _field(base, path)
        assert (tuple(value) if isinstance(value, list) else value) != default, \
            f"model/{model}.yaml: {path}: {value!r} restates the {preset} preset's value"


@pytest.mark.parametrize("model", MODELS)
def test_model_resolves_to_its_preset_plus_the_recorded_deltas(model):
    import dataclasses

    from ocr2.config import OCR2Config

    preset, changes = RESOLVED_DELTAS[model]
    expected = OCR2Config.from_preset(preset)
    for path, value in changes.items():
        parent, _, leaf = path.rpartition(".")
        if parent:
            expected = dataclasses.replace(expected, **{parent: dataclasses.replace(getattr(expected, parent),
                                                                                    **{leaf: value})})
        else:
            expected = dataclasses.replace(expected, **{leaf: value})
    cfg = _compose([f"model={model}"])
    assert build_model_config(cfg.model) == expected
    assert _model_file(model)[0] == preset and cfg.model.preset == preset


@pytest.mark.parametrize("preset", ["tiny", "official"])
def test_preset_model_files_are_the_dataclass(preset):
    from omegaconf import OmegaConf

    from configs import preset_node
    from ocr2.config import OCR2Config

    cfg = _compose([f"model={preset}"])
    assert build_model_config(cfg.model) == OCR2Config.from_preset(preset)
    # Every field is in the composed config (so any is one override without `+`), with the dataclass's value.
    assert OmegaConf.to_container(cfg.model, resolve=True) == preset_node(preset)


@pytest.mark.parametrize("path,text,value", [("encoder.mask", "raster", "raster"), ("decoder.num_layers", "5", 5),
                                             ("attn_implementation", "eager", "eager"),
                                             ("vision.global_attn_indexes", "[0]", (0,))])
def test_any_model_field_is_one_override(path, text, value):
    assert _field(build_model_config(_compose(["model=micro", f"model.{path}={text}"]).model), path) == value
