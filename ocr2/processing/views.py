"""View recipes: how a page becomes the views the model sees, and how many `<image>` positions they take.

One concept, one home. A `ViewRecipe` names a way of cutting a page into views; `page_views(image, recipe)` is the
one entry point (page -> `PageViews`) used by training examples, the pipeline, evaluation and every research
command, and `recipe.image_tokens(...)` is the one token count (it asks `OCR2Config.image_token_count`, which
knows the decoder layout [crops | global view | view separator]). Everything that takes a recipe takes it by
name under one knob, `views`: `OCRPipeline(views=...)`, `ocr2-infer --views`, `ocr2-eval views=...`,
`stage.views=[...]` in training (a list: stage 1 cycles through its recipes batch by batch).

Recipes by name (`get_recipe`):

| name         | global view                                  | crops                     | `<image>` positions     |
|--------------|----------------------------------------------|---------------------------|-------------------------|
| `multi_crop` | G², aspect kept, grey pad                    | n x C² (n = 0 or 2..6)    | 144·n + 256 + 1         |
| `no_crop`    | page squashed to C², then padded to G²       | -                         | 256 + 1                 |
| `single:S`   | S², aspect kept, grey pad (`single`: S = G)  | -                         | (S/64)² + 1             |
| `tiny`       | 512², squashed (aspect not kept)             | -                         | 64 + 1                  |
| `small`      | 640², squashed                               | -                         | 100 + 1                 |
| `base`       | 1024², pad (= `single:1024`)                 | -                         | 256 + 1                 |
| `large`      | 1280², pad (= `single:1280`)                 | -                         | 400 + 1                 |
| `gundam`     | 1024², pad                                   | n x 640² (n = 0 or 2..6)  | 100·n + 256 + 1         |

G and C are the model's `global_view_size` and `crop_size` (1024 and 768 in the release; the toy `micro` model
uses 256 and 192), so these three names mean "the release's procedure at this model's sizes"; the v1 modes have
fixed sizes. Counts are for the official geometry: 64 px per visual token side, one flow query per visual token.

- `multi_crop` (alias `ocr2`) is the release's default preprocessing, reproduced pixel for pixel
  (ocr2/processing/image.py): crops are the page squashed onto the (cols x rows) grid of 768 tiles whose aspect
  is closest to the page's, cut row-major; pages that fit in one 768 tile get none.
- `no_crop` is the release's `crop_mode=False` as its vLLM front-end does it: the page is first squashed to
  768 x 768 (aspect lost) and then padded/upscaled to the 1024 global size. (The release's HF `infer` instead keeps
  the squashed 768 view, 144 + 1 positions; the transformers port contain-resizes to 768. Crop mode has no such
  ambiguity, which is why it is the default everywhere.)
- `tiny` .. `gundam` are DeepSeek-OCR v1's resolution modes. v1 squashes when the view size is <= 640 and pads
  above; Gundam is the multi-crop procedure with 640² tiles. Their vision-token counts (no separator) are the v1
  paper's Table 1 figures: Tiny 64, Small 100, Base 256, Large 400, Gundam 100·n + 256.
- `single:S` is one contain-resized view: the paper's stage-1 training views (768² and 1024²) and the toy
  models' training views.

Every resize is Pillow BICUBIC and the pad colour is (127, 127, 127), as in the release, because the checkpoint
was trained on exactly those pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from ocr2.processing.image import (
    CROP_SIZE, GLOBAL_SIZE, MAX_CROPS, MIN_CROPS, PageViews, choose_grid, crops, global_view, to_tensor,
)

__all__ = ["RECIPES", "ViewRecipe", "get_recipe", "get_recipes", "page_views", "recipe_names", "view_transform"]

_RESAMPLE = Image.Resampling.BICUBIC
GLOBAL_RESIZES = ("pad", "squash", "squash_pad")


@dataclass(frozen=True)
class ViewRecipe:
    """One way of turning a page into views.

    `global_resize`: how the global view is made. "pad": aspect-preserving resize onto a grey square (the
    release's global view); "squash": plain resize to a square (v1 Tiny/Small); "squash_pad": squash to
    `squash_size` first, then pad (the release's `crop_mode=False`). `crop_size` None: no crops.
    """

    name: str
    global_size: int
    crop_size: int | None = None
    global_resize: str = "pad"
    squash_size: int | None = None
    min_crops: int = MIN_CROPS
    max_crops: int = MAX_CROPS
    description: str = ""

    def __post_init__(self):
        if self.global_resize not in GLOBAL_RESIZES:
            raise ValueError(f"view recipe {self.name!r}: global_resize must be one of {GLOBAL_RESIZES}, "
                             f"got {self.global_resize!r}")
        if self.global_resize == "squash_pad" and not self.squash_size:
            raise ValueError(f"view recipe {self.name!r}: squash_pad needs a squash_size")

    def __str__(self) -> str:
        return self.name

    # ------------------------------------------------------------------ geometry
    @property
    def view_sizes(self) -> tuple[int, ...]:
        """Pixel sizes of the views this recipe produces; the encoder needs a flow-query table for each."""
        return (self.global_size,) + ((self.crop_size,) if self.crop_size else ())

    def grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(cols, rows) of crops for a (width, height) page; (1, 1) = no crops."""
        if not self.crop_size:
            return (1, 1)
        w, h = image_size
        return choose_grid(int(w), int(h), crop_size=self.crop_size, min_crops=self.min_crops,
                           max_crops=self.max_crops)

    def num_crops(self, image_size: tuple[int, int]) -> int:
        cols, rows = self.grid(image_size)
        return cols * rows if cols * rows > 1 else 0

    # ------------------------------------------------------------------ token budget
    def image_tokens(self, image_size: tuple[int, int], config) -> int:
        """`<image>` placeholders (decoder positions) of one page under `config`: crops + global + separator."""
        return config.image_token_count(self.num_crops(image_size), self.global_size, self.crop_size)

    def vision_tokens(self, image_size: tuple[int, int], config) -> int:
        """Vision tokens counted as the v1 paper does (no view separator): Tiny 64, ..., Gundam 100·n + 256."""
        return self.image_tokens(image_size, config) - 1

    # ------------------------------------------------------------------ pixels
    def views(self, image: Image.Image) -> PageViews:
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.global_resize == "pad":
            glob = global_view(image, self.global_size)
        elif self.global_resize == "squash":
            glob = image.resize((self.global_size, self.global_size), resample=_RESAMPLE)
        else:
            squashed = image.resize((self.squash_size, self.squash_size), resample=_RESAMPLE)
            glob = global_view(squashed, self.global_size)
        grid = self.grid(image.size)
        tiles = crops(image, grid, self.crop_size) if self.crop_size else []
        side = self.crop_size or self.global_size
        crop_tensor = (torch.stack([to_tensor(t) for t in tiles]) if tiles
                       else torch.empty(0, 3, side, side, dtype=torch.float32))
        return PageViews(global_view=to_tensor(glob), crops=crop_tensor, grid=grid if tiles else (1, 1),
                         num_crops=len(tiles), image_size=image.size)


# Recipes whose sizes are fixed; multi_crop / no_crop / single take the model's sizes (see get_recipe).
RECIPES: dict[str, ViewRecipe] = {
    r.name: r
    for r in (
        ViewRecipe("tiny", 512, None, "squash", description="v1 Tiny: 512² squash, 64 tokens"),
        ViewRecipe("small", 640, None, "squash", description="v1 Small: 640² squash, 100 tokens"),
        ViewRecipe("base", 1024, description="v1 Base: 1024² pad, 256 tokens"),
        ViewRecipe("large", 1280, description="v1 Large: 1280² pad, 400 tokens"),
        ViewRecipe("gundam", GLOBAL_SIZE, 640, description="v1 Gundam: 1024² global + n x 640² tiles"),
    )
}
_ALIASES = {"ocr2": "multi_crop"}


def recipe_names() -> list[str]:
    """Every name `get_recipe` accepts, `single:S` written as a pattern."""
    return sorted([*RECIPES, "multi_crop", "no_crop", "single", *_ALIASES]) + ["single:S"]


def get_recipe(recipe: str | ViewRecipe, config=None) -> ViewRecipe:
    """A recipe by name (see the module table); `single:S` for one contain-resized S² view. `config` (an
    OCR2Config) gives the sizes of `multi_crop`, `no_crop` and `single`; without it the release's 1024 / 768."""
    if isinstance(recipe, ViewRecipe):
        return recipe
    g = config.global_view_size if config is not None else GLOBAL_SIZE
    c = config.crop_size if config is not None else CROP_SIZE
    name = str(recipe).strip().lower()
    name = _ALIASES.get(name, name)
    if name in RECIPES:
        return RECIPES[name]
    if name == "multi_crop":
        return ViewRecipe("multi_crop", g, c, description=f"the release's default: {g}² global view + n x {c}² crops")
    if name == "no_crop":
        return ViewRecipe("no_crop", g, None, "squash_pad", squash_size=c,
                          description=f"the release's crop_mode=False: squashed to {c}², padded to {g}²")
    kind, _, size = name.partition(":")
    if kind == "single":
        if not size:
            size = str(g)
        if not size.isdigit() or int(size) <= 0:
            raise ValueError(f"view recipe {recipe!r}: single:S needs a positive pixel size S, e.g. single:1024")
        return ViewRecipe(f"single:{int(size)}", int(size), description=f"one {int(size)}² view, aspect kept")
    raise ValueError(f"unknown view recipe {recipe!r}; choose from {recipe_names()}")


def get_recipes(recipes, config=None) -> tuple[ViewRecipe, ...]:
    """One recipe or a list of them (stage 1 cycles through several) -> a non-empty tuple."""
    if isinstance(recipes, (str, ViewRecipe)):
        recipes = [recipes]
    out = tuple(get_recipe(r, config) for r in recipes)
    if not out:
        raise ValueError("no view recipe given")
    return out


def page_views(image: Image.Image, recipe: str | ViewRecipe, config=None) -> PageViews:
    """The one entry point: a page -> its normalised views under `recipe` (names resolved against `config`)."""
    return get_recipe(recipe, config).views(image)


def view_transform(recipe: ViewRecipe, image_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(scale_x, scale_y, offset_x, offset_y): page pixel (x, y) -> global-view pixel (x*sx + ox, y*sy + oy).
    Mirrors ocr2/processing/image.py::global_view's rounding (short side and offset, round-half-to-even)."""
    w, h = image_size
    size = recipe.global_size
    if recipe.global_resize != "pad":  # squash, and squash_pad (a square squashed view pads to nothing)
        return size / w, size / h, 0.0, 0.0
    if w == h:
        return size / w, size / h, 0.0, 0.0
    if w > h:
        rh = round(h / w * size)
        return size / w, rh / h, 0.0, float(round((size - rh) * 0.5))
    rw = round(w / h * size)
    return rw / w, size / h, float(round((size - rw) * 0.5)), 0.0
