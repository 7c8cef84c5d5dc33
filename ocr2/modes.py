"""Resolution modes: DeepSeek-OCR v1's token budgets as named presets for our tokenizer + encoder.

Reference: shared/reference/deepseek-ocr1-memory-mhc.md §A.3 (modes table), §A.2 "Image preprocessing" and
§E.2 (exact preprocessing rules). Our vision tokenizer downsamples 64 px per token side (patch 16 x two
stride-2 convs), like v1's DeepEncoder, and DeepEncoder V2 keeps one flow query per visual token
(`query_ratio` 1.0), so a view of side s gives (s/64)^2 decoder tokens, exactly v1's counts:

| mode    | global view              | crops                | vision tokens (paper)  | decoder positions (ours)   |
|---------|--------------------------|----------------------|------------------------|----------------------------|
| tiny    | 512², plain resize       | -                    | 64                     | 64 + 1                     |
| small   | 640², plain resize       | -                    | 100                    | 100 + 1                    |
| base    | 1024², pad (keep aspect) | -                    | 256                    | 256 + 1                    |
| large   | 1280², pad (keep aspect) | -                    | 400                    | 400 + 1                    |
| gundam  | 1024², pad               | n x 640² (n in 2..6) | n·100 + 256            | n·100 + 256 + 1            |
| ocr2    | 1024², pad               | n x 768² (n in 2..6) | n·144 + 256            | n·144 + 256 + 1            |

Token convention. `ResolutionMode.token_count` counts *vision tokens* the way the v1 paper does (Table 1:
Tiny 64, ..., Gundam n·100 + 256). `ResolutionMode.placeholder_count` counts the *decoder positions* the image
occupies in our layout, i.e. `<image>` placeholders = vision tokens + 1 view separator
([crops | global | separator], `OCR2Model.image_embeddings`); it equals `OCR2Config.image_token_count`. v1
itself also inserted one newline token per token row (Base: 16·17 + 1 = 273 positions, §A.2 item 7); OCR 2's
encoder emits a 1-D query sequence and has no newline tokens, so neither do we.

Preprocessing, v1's rule (released HF `infer` of DeepSeek-OCR, `modeling_deepseekocr.py`, non-crop branch;
reference §A.2 and §E.2):

    if image_size <= 640:
        image = image.resize((image_size, image_size))          # Tiny, Small: squash, aspect NOT kept
    global_view = ImageOps.pad(image, (image_size, image_size), color=mean)  # Base, Large: contain + pad

and in crop mode (Gundam) the global view is `ImageOps.pad` at base_size 1024 and the tiles come from the
InternVL-style grid choice (2..6 tiles of 640², none when both sides are <= 640) — the same procedure as OCR 2's
`preprocess` with a 640 crop size. All resizes use Pillow's BICUBIC (the default of `Image.resize` and of
`ImageOps.pad`) and the pad colour is int(0.5·255) = 127, which is what `ocr2.processing.image` already does.

Query tables. DeepEncoder V2 has one learnable flow-query table per view size (`EncoderConfig.
query_view_sizes`, default 768 and 1024). `apply_mode(config, mode)` returns a config whose tables cover the
mode's sizes (512, 640, 1280 are added as needed) and whose `global_view_size` / `crop_size` are the mode's, so
a model built from it, or a checkpoint saved by such a model, runs the mode. A checkpoint trained without those
tables does not have them: `add_query_tables(model, sizes)` grows an existing model in place, initialising each
new table by 2-D interpolation of the nearest trained one (a heuristic start for fine-tuning, NOT a trained
table; reading quality in such a mode is meaningless until it is trained).

Training and reading in a mode: `ocr2-train resolution=small` (configs/resolution/, one file per mode) builds the
model with `apply_mode` and trains on `views_for` views (ocr2.data.examples, `resolution_mode`); `ocr2-infer --mode
small`, `ocr2-eval resolution_mode=small` and `OCRPipeline(resolution_mode="small")` read with the same views.

Library usage:

    from ocr2.modes import MODES, apply_mode, views_for
    cfg = apply_mode(OCR2Config.from_preset("tiny"), "small")
    model = OCR2Model(cfg)
    views = views_for(page, "small")                     # PageViews: 640² global view, no crops
    n = MODES["small"].placeholder_count(page.size, cfg)  # 101 <image> placeholders
    ids = encode_prompt(tokenizer, PROMPT_FREE_OCR, [n])
    model.generate(torch.tensor([ids]), views.global_view[None], None, [0])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Iterable

import torch
from PIL import Image

from ocr2.config import OCR2Config
from ocr2.processing.image import (
    MAX_CROPS, MIN_CROPS, PageViews, choose_grid, global_view, preprocess, to_tensor,
)

__all__ = [
    "MODES", "MODE_LADDER", "ResolutionMode", "add_query_tables", "apply_mode", "config_for_modes", "get_mode",
    "require_query_tables", "views_for",
]

_RESAMPLE = Image.Resampling.BICUBIC


@dataclass(frozen=True)
class ResolutionMode:
    """One token budget: a global view of `global_size` px plus, in crop mode, tiles of `crop_size` px.

    `resize`: how the global view is made when there are no crops: "pad" (aspect-preserving resize onto a grey
    square, v1 Base/Large and every crop-mode global view) or "squash" (plain resize to a square, v1 Tiny/Small,
    i.e. image_size <= 640). Crop mode always pads the global view.
    """

    name: str
    global_size: int
    crop_size: int | None = None  # None: no crops
    crop_mode: bool = False
    resize: str = "pad"  # pad | squash
    min_crops: int = MIN_CROPS
    max_crops: int = MAX_CROPS
    description: str = ""

    def __post_init__(self):
        if self.crop_mode and self.crop_size is None:
            raise ValueError(f"mode {self.name!r}: crop_mode needs a crop_size")
        if self.resize not in ("pad", "squash"):
            raise ValueError(f"mode {self.name!r}: resize must be 'pad' or 'squash', got {self.resize!r}")

    # ------------------------------------------------------------------ geometry
    @property
    def view_sizes(self) -> tuple[int, ...]:
        """Pixel sizes of the views this mode produces (each needs a flow-query table)."""
        return (self.global_size,) + ((self.crop_size,) if self.crop_mode else ())

    def grid(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """(cols, rows) of tiles for a (width, height) page (or a square side); (1, 1) = no tiles."""
        if not self.crop_mode:
            return (1, 1)
        w, h = _wh(image_size)
        return choose_grid(w, h, crop_size=self.crop_size, min_crops=self.min_crops, max_crops=self.max_crops)

    def num_crops(self, image_size: int | tuple[int, int]) -> int:
        cols, rows = self.grid(image_size)
        return cols * rows if cols * rows > 1 else 0

    # ------------------------------------------------------------------ token budget
    def token_count(self, image_size: int | tuple[int, int], config: OCR2Config | None = None) -> int:
        """Vision tokens of one page, counted like the v1 paper (no separator): Tiny 64, Small 100, Base 256,
        Large 400, Gundam n·100 + 256. With `config`, its encoder's per-view outputs are used (query_ratio,
        mask spec); without, the official geometry (64 px per token side, one query per visual token)."""
        cfg = config or OCR2Config()
        n = self.num_crops(image_size)
        crops = n * cfg.view_output_tokens(self.crop_size) if n else 0
        return crops + cfg.view_output_tokens(self.global_size)

    def placeholder_count(self, image_size: int | tuple[int, int], config: OCR2Config | None = None) -> int:
        """Decoder positions (`<image>` placeholders) of one page: `token_count` + 1 view separator."""
        return self.token_count(image_size, config) + 1

    # ------------------------------------------------------------------ pixels
    def views(self, image: Image.Image) -> PageViews:
        return views_for(image, self)


def _wh(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return image_size, image_size
    w, h = image_size
    return int(w), int(h)


MODES: dict[str, ResolutionMode] = {
    m.name: m
    for m in (
        ResolutionMode("tiny", 512, resize="squash", description="v1 Tiny: 512² resize, 64 tokens"),
        ResolutionMode("small", 640, resize="squash", description="v1 Small: 640² resize, 100 tokens"),
        ResolutionMode("base", 1024, description="v1 Base: 1024² pad, 256 tokens"),
        ResolutionMode("large", 1280, description="v1 Large: 1280² pad, 400 tokens"),
        ResolutionMode("gundam", 1024, 640, crop_mode=True,
                       description="v1 Gundam: n x 640² tiles + 1024² global, n·100 + 256 tokens"),
        ResolutionMode("ocr2", 1024, 768, crop_mode=True,
                       description="OCR 2 default: n x 768² crops + 1024² global, n·144 + 256 tokens"),
    )
}

# Most to least faithful image modes, the order optical memory degrades along (reference §A.9, Fig. 13).
MODE_LADDER: tuple[str, ...] = ("gundam", "large", "base", "small", "tiny")


def get_mode(mode: str | ResolutionMode) -> ResolutionMode:
    if isinstance(mode, ResolutionMode):
        return mode
    try:
        return MODES[mode.lower()]
    except KeyError:
        raise ValueError(f"unknown resolution mode {mode!r}; choose from {sorted(MODES)}") from None


def _check_size(config: OCR2Config, size: int) -> None:
    step = config.vision.downsample
    if size % step:
        raise ValueError(f"view size {size} is not a multiple of the vision tokenizer's {step} px per token")


def require_query_tables(config: OCR2Config, mode: str | ResolutionMode) -> ResolutionMode:
    """`mode`, after checking that `config` has a flow-query table for each of its view sizes (a model cannot read
    a view size it has no queries for)."""
    m = get_mode(mode)
    missing = [s for s in m.view_sizes if s not in config.encoder.query_view_sizes]
    if missing:
        raise ValueError(f"resolution mode {m.name!r} needs flow-query tables for view sizes {missing}; the model has "
                         f"{list(config.encoder.query_view_sizes)} (train with resolution={m.name}, build the config "
                         f"with ocr2.modes.apply_mode, or grow a model with ocr2.modes.add_query_tables)")
    return m


def config_for_modes(config: OCR2Config, modes: Iterable[str | ResolutionMode]) -> OCR2Config:
    """A copy of `config` whose encoder has a flow-query table for every view size of `modes` (the existing
    tables are kept); global_view_size / crop_size are unchanged. For a model that serves several modes at once
    (optical memory)."""
    sizes = set(config.encoder.query_view_sizes)
    for m in modes:
        for s in get_mode(m).view_sizes:
            _check_size(config, s)
            sizes.add(s)
    encoder = dataclasses.replace(config.encoder, query_view_sizes=tuple(sorted(sizes)))
    return dataclasses.replace(config, encoder=encoder)


def apply_mode(config: OCR2Config, mode: str | ResolutionMode) -> OCR2Config:
    """A copy of `config` set up for `mode`: `global_view_size` and (crop modes) `crop_size` are the mode's,
    and `encoder.query_view_sizes` is extended so the mode's view sizes have flow-query tables."""
    m = get_mode(mode)
    cfg = config_for_modes(config, [m])
    return dataclasses.replace(cfg, global_view_size=m.global_size,
                               crop_size=m.crop_size if m.crop_mode else cfg.crop_size)


def views_for(image: Image.Image, mode: str | ResolutionMode) -> PageViews:
    """The normalised views of one RGB page in `mode`, with v1's preprocessing (see module docstring).

    No-crop modes give one global view and an empty crop tensor of shape (0, 3, s, s) with s the global size;
    crop modes are `preprocess(image, global_size, crop_size, crop_mode=True)` (pad + InternVL grid)."""
    m = get_mode(mode)
    if image.mode != "RGB":
        image = image.convert("RGB")
    if m.crop_mode:
        return preprocess(image, m.global_size, m.crop_size, crop_mode=True, min_crops=m.min_crops,
                          max_crops=m.max_crops)
    s = m.global_size
    if m.resize == "squash":
        glob = image.resize((s, s), resample=_RESAMPLE)  # v1: image_size <= 640 -> directly resize
    else:
        glob = global_view(image, s)  # v1: ImageOps.pad(image, (s, s), color=127)
    return PageViews(global_view=to_tensor(glob), crops=torch.empty(0, 3, s, s, dtype=torch.float32),
                     grid=(1, 1), num_crops=0, image_size=image.size)


# -------------------------------------------------------------------------------------------- checkpoints
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
