"""The Hydra configs of ocr2-train / ocr2-eval (yaml groups, and the page generator's json under synth/).

An importable package so that an installed wheel ships them (pyproject.toml: package-data) and every entry point
finds them next to this file, installed or in a checkout:

    from configs import CONFIG_DIR   # then hydra.main(config_path=CONFIG_DIR) / initialize_config_dir(CONFIG_DIR)

Importing it also registers the model presets with Hydra (group `model/preset`): every OCR2Config field of
`OCR2Config.from_preset(name)`, so configs/model/*.yaml state only their deltas and any field is still one override
(`model.encoder.mask=raster`, no `+`). The dataclass is the one source of the field values.
"""

from __future__ import annotations

import os

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
SYNTH_DIR = os.path.join(CONFIG_DIR, "synth")


def preset_node(name: str) -> dict:
    """`preset: <name>` plus every field of OCR2Config.from_preset(name), as plain yaml-able data."""
    from ocr2.config import PRESETS, OCR2Config

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return list(value) if isinstance(value, tuple) else value

    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return {"preset": name, **plain(OCR2Config.from_preset(name).to_dict())}


def checkpoint_node() -> dict:
    """`preset: checkpoint`: the model config is the `init_from` checkpoint's own (train/builders.py). Every field is
    listed as null ("the checkpoint's value"), so a field is still one override (`model.encoder.mask=raster`) that
    changes only that field."""
    def nulls(value):
        return {k: nulls(v) for k, v in value.items()} if isinstance(value, dict) else None

    return {**nulls(preset_node("official")), "preset": "checkpoint"}


def register_presets() -> None:
    from hydra.core.config_store import ConfigStore

    from ocr2.config import PRESETS

    store = ConfigStore.instance()
    for name in PRESETS:
        store.store(group="model/preset", name=name, node=preset_node(name))
    store.store(group="model/preset", name="checkpoint", node=checkpoint_node())


register_presets()
