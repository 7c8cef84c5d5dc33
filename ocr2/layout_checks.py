"""What the official and transformers-port layouts can hold, checked before an export writes anything.

ocr2 trains variants the other layouts have no words for. Two kinds of gap:
- errors: tensors with no name there (hyper-connection streams), or a model the reader would silently compute
  differently (the transformers port builds its model from its config alone, so another encoder mask, other query
  tables or renormalised top-k weights would load without complaint and give other outputs);
- warnings (official layout only): sizes the release's code and vLLM do not read from config.json (the vision stack
  is hard-coded there). The folder still carries the full OCR2Config (`ocr2_config`), so ocr2 reads it exactly;
  the release's tools do not.
"""

from __future__ import annotations

import dataclasses

from ocr2.config import OCR2Config

# The port's query tables: 144 rows for 768² views, 256 for 1024², chosen by `num_patches <= 144`.
_PORT_VIEWS = {768: 144, 1024: 256}


def _residual_errors(cfg: OCR2Config, layout: str) -> list[str]:
    return [f"{name}.residual={getattr(cfg, name).residual!r}: hyper-connection streams have no tensors in the "
            f"{layout} layout (only residual='residual' exports)"
            for name in ("encoder", "decoder") if getattr(cfg, name).residual != "residual"]


def _geometry(cfg: OCR2Config) -> list[str]:
    """How cfg's views and flow queries differ from the release's (1024² global, 768² crops, one query per visual
    token, tables for 768 and 1024, the causal-flow mask)."""
    out = []
    if (cfg.global_view_size, cfg.crop_size) != (1024, 768):
        out.append(f"views {cfg.global_view_size}² global / {cfg.crop_size}² crops (the release: 1024² / 768²)")
    if cfg.encoder.mask != "causal_flow":
        out.append(f"encoder.mask={cfg.encoder.mask!r} (the release: 'causal_flow')")
    positions = (cfg.encoder.visual_positions, cfg.encoder.query_positions)
    if positions != ("raster", "sequential"):
        out.append(f"encoder positions visual={positions[0]!r} / queries={positions[1]!r} (the release: 'raster' / "
                   f"'sequential')")
    if tuple(sorted(cfg.encoder.query_view_sizes)) != (768, 1024):
        out.append(f"encoder.query_view_sizes={tuple(cfg.encoder.query_view_sizes)} (the release: (768, 1024))")
    counts = {s: cfg.num_queries(s) for s in _PORT_VIEWS}
    if counts != _PORT_VIEWS:
        out.append(f"flow queries per view {counts} (the release: {_PORT_VIEWS}; set by vision.patch_size, the "
                   f"compressor's stride-2 convs and encoder.query_ratio)")
    return out


def layout_problems(cfg: OCR2Config, layout: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) for writing `cfg`'s model in `layout` ('ocr2', 'official' or 'hf')."""
    if layout == "ocr2":
        return [], []
    errors = _residual_errors(cfg, layout)
    if layout == "hf":
        errors += [f"{g}: the transformers port builds only the release's geometry" for g in _geometry(cfg)]
        if cfg.decoder.norm_topk_prob:
            errors.append("decoder.norm_topk_prob=True: the transformers port never renormalises the top-k weights")
        return errors, []
    if layout != "official":
        raise ValueError(f"unknown layout {layout!r} (ocr2, official or hf)")
    official = OCR2Config()
    warnings = [f"{g}: the release's code and vLLM assume the release's" for g in _geometry(cfg)]
    for name in ("vision", "encoder"):
        ours, theirs = getattr(cfg, name), getattr(official, name)
        differ = [f.name for f in dataclasses.fields(theirs)
                  if f.name not in ("mask", "query_view_sizes", "query_ratio", "residual", "hc_streams",
                                    "visual_positions", "query_positions", "shuffle_visual")  # shuffle: training only
                  and getattr(ours, f.name) != getattr(theirs, f.name)]
        if differ:
            warnings.append(f"{name} sizes differ from the release's in {differ}: the release's code and vLLM "
                            f"hard-code the release's {name}; only ocr2 reads this one (config.json's ocr2_config)")
    return errors, warnings
