"""Flow-query tables per view size: which a model needs for a view recipe, and growing a trained model's set.

DeepEncoder V2 owns one learnable flow-query table per view size (`EncoderConfig.query_view_sizes`; the release
has 768 and 1024; every crop of a size shares its table). A model can only read views whose size has a table, so
a config that will be trained or read with a recipe (ocr2/processing/views.py) must list the recipe's sizes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import torch

from ocr2.config import OCR2Config
from ocr2.processing.views import ViewRecipe, get_recipe

__all__ = ["add_query_tables", "require_query_tables", "with_query_tables"]


def _check_size(config: OCR2Config, size: int) -> None:
    step = config.vision.downsample
    if size % step:
        raise ValueError(f"view size {size} is not a multiple of the vision tokenizer's {step} px per token")


def with_query_tables(config: OCR2Config, recipes: Iterable[str | ViewRecipe]) -> OCR2Config:
    """A copy of `config` whose encoder has a flow-query table for every view size of `recipes` (existing tables
    are kept; nothing else changes). Training builds its model from this, so the model can read its data."""
    sizes = set(config.encoder.query_view_sizes)
    for r in recipes:
        for s in get_recipe(r, config).view_sizes:
            _check_size(config, s)
            sizes.add(s)
    if sizes == set(config.encoder.query_view_sizes):
        return config
    encoder = dataclasses.replace(config.encoder, query_view_sizes=tuple(sorted(sizes)))
    return dataclasses.replace(config, encoder=encoder)


def require_query_tables(config: OCR2Config, recipe: str | ViewRecipe) -> ViewRecipe:
    """`recipe` resolved against `config`, after checking the model has a flow-query table for each of its view
    sizes (a model cannot read a view size it has no queries for). Mask specs without queries need none."""
    from ocr2.modeling.masks import get_mask_spec

    r = get_recipe(recipe, config)
    if not get_mask_spec(config.encoder.mask).use_queries:
        return r
    missing = [s for s in r.view_sizes if s not in config.encoder.query_view_sizes]
    if missing:
        raise ValueError(f"view recipe {r.name!r} needs flow-query tables for view sizes {missing}; the model has "
                         f"{list(config.encoder.query_view_sizes)} (train with stage.views=[{r.name}], build the "
                         f"config with ocr2.query_tables.with_query_tables, or grow a model with add_query_tables)")
    return r


@torch.no_grad()
def add_query_tables(model, sizes: Iterable[int]) -> list[int]:
    """Give an existing `OCR2Model` flow-query tables for `sizes` it lacks, in place; returns the sizes added.

    A new table of n queries is the nearest existing table (by view size) reshaped to its square grid and
    resized bicubically to sqrt(n) x sqrt(n) (a plain copy when n matches), so it starts near a trained table.
    It is NOT trained for that size: fine-tune before reading anything into results at the new size. The
    model's config (`encoder.query_view_sizes`) is updated so `save_pretrained` round-trips."""
    cfg: OCR2Config = model.config
    tables = model.encoder.flow_queries
    if not model.encoder.spec.use_queries:
        return []  # this mask spec keeps visual tokens; there are no query tables to add
    added = []
    for size in sorted({int(s) for s in sizes}):
        if str(size) in tables:
            continue
        _check_size(cfg, size)
        n = cfg.num_queries(size)
        if len(tables):
            src_size = min((int(k) for k in tables), key=lambda k: (abs(k - size), k))
            src = tables[str(src_size)]
            new = _resize_table(src.detach().float(), n).to(src.dtype)
        else:
            ref = next(model.parameters())
            new = torch.randn(n, cfg.encoder.hidden_size, device=ref.device, dtype=ref.dtype) * cfg.initializer_range
        tables[str(size)] = torch.nn.Parameter(new)
        added.append(size)
    if added:
        sizes_now = tuple(sorted(set(cfg.encoder.query_view_sizes) | set(added)))
        model.config = dataclasses.replace(cfg, encoder=dataclasses.replace(cfg.encoder, query_view_sizes=sizes_now))
    return added


def _resize_table(table: torch.Tensor, n: int) -> torch.Tensor:
    m = table.shape[0]
    if m == n:
        return table.clone()
    side_m, side_n = math.isqrt(m), math.isqrt(n)
    if side_m * side_m == m and side_n * side_n == n:
        grid = table.T.reshape(1, -1, side_m, side_m)
        out = torch.nn.functional.interpolate(grid, size=(side_n, side_n), mode="bicubic", align_corners=False)
        return out.reshape(-1, n).T.contiguous()
    return torch.nn.functional.interpolate(table.T[None], size=n, mode="linear", align_corners=False)[0].T.contiguous()
