"""Image preprocessing of the official DeepSeek-OCR 2 release, reproduced pixel for pixel: the primitives.

How they combine into a page's views is a view recipe (ocr2/processing/views.py). The release's own procedure
(its `process/image_process.py` and the HF `infer`), the `multi_crop` recipe, gives per page

- one global view: the whole page, aspect preserved, long side resized to 1024, centred on a 1024x1024 canvas
  of grey (127,127,127) -> 256 visual tokens;
- k local crops of 768x768 (k in {0, 2..6}): the page squashed (aspect NOT preserved) onto a (cols x rows) grid
  of 768 tiles whose aspect ratio is closest to the page's, cut row-major -> 144 tokens each.

Everything goes through Pillow with BICUBIC resampling, exactly as the release does, because the checkpoint was
trained on those pixels: a different resampler, rounding or pad colour shifts the inputs by a few grey levels
and silently changes the OCR output. Normalisation is torchvision's ToTensor + Normalize(0.5, 0.5), rewritten
in torch (torchvision is not a dependency) with the same float32 operation order, so values match bit for bit.

Known deviations of the transformers port (`DeepseekOcr2ImageProcessorPil`) from the release, for reference:
- the global view's paste offset is `(1024 - short) // 2`; the release (`ImageOps.pad`) uses
  `round((1024 - short) * 0.5)`, i.e. Python's round-half-to-even, so when `1024 - short` is 3 mod 4 (about a
  quarter of all page sizes, e.g. 1000x700) the port's global view is shifted by one pixel;
- its candidate grid order differs from the release's set-iteration order, which does not change the chosen grid
  for the default 2..6 crops (the order only matters on exact ties, and every tied pair keeps its relative order);
- with cropping disabled it contain-resizes to 768 and pads to 768 (144 tokens); the release squashes to
  768x768 and then (vLLM) upscales to 1024 or (HF infer) pads to 768. See the `no_crop` recipe.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageOps

__all__ = [
    "CANDIDATE_GRIDS",
    "ImageError",
    "PageViews",
    "batch_views",
    "candidate_grids",
    "choose_grid",
    "crops",
    "global_view",
    "load_image",
    "to_tensor",
]

GLOBAL_SIZE = 1024  # BASE_SIZE in the release config
CROP_SIZE = 768  # IMAGE_SIZE in the release config
MIN_CROPS = 2
MAX_CROPS = 6
PAD_COLOR = (127, 127, 127)  # int(0.5 * 255): the normalisation mean, so padding maps to ~0 after Normalize
_RESAMPLE = Image.Resampling.BICUBIC  # Pillow's default for RGB `resize` and for `ImageOps.pad`

# The release builds the candidate (cols, rows) grids as a Python *set* and stable-sorts it by cols*rows, so the
# order inside equal products is CPython's set iteration order. The order matters on exact aspect-ratio ties
# (the later grid may replace the earlier one), so it is written out literally for the default 2..6 crops.
CANDIDATE_GRIDS: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 1), (3, 1), (1, 3), (4, 1), (1, 4), (2, 2), (1, 5), (5, 1), (6, 1), (2, 3), (1, 6), (3, 2),
)


class ImageError(ValueError):
    """An input image cannot be used: unreadable, corrupt, or over the decompression-bomb pixel limit."""


def candidate_grids(min_crops: int = MIN_CROPS, max_crops: int = MAX_CROPS) -> tuple[tuple[int, int], ...]:
    """(cols, rows) grids with min_crops <= cols*rows <= max_crops, in the release's order.

    For non-default limits the release's construction is replayed: the same set comprehension, in the same
    insertion order, then a stable sort by area. CPython's set order for small int tuples is deterministic (int
    and tuple hashes are not randomised), so this reproduces whatever order the release would have used.
    """
    if (min_crops, max_crops) == (MIN_CROPS, MAX_CROPS):
        return CANDIDATE_GRIDS
    grids = set(
        (i, j)
        for n in range(min_crops, max_crops + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_crops <= i * j <= max_crops
    )
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))


def choose_grid(width: int, height: int, crop_size: int = CROP_SIZE, min_crops: int = MIN_CROPS,
                max_crops: int = MAX_CROPS) -> tuple[int, int]:
    """(cols, rows) of local crops for a width x height page; (1, 1) means "no crops".

    Pages that fit inside one crop in both directions get no crops (the release's `W <= 768 and H <= 768`).
    Otherwise the grid whose cols/rows is closest to W/H wins; only the aspect ratio matters, so a 769x500 page
    already gets 3x2 = 6 crops. On an exact tie in distance (two different ratios equidistant from W/H, e.g.
    5:4 between 1:1 and 3:2) the later candidate replaces the current best only if the page has more than half
    the pixels that grid's crops hold, i.e. bigger pages get more crops.
    """
    if width <= crop_size and height <= crop_size:
        return (1, 1)
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(min_crops, max_crops):
        # Same float expressions as the release, so exact ties are detected identically.
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * crop_size * crop_size * cols * rows:
            best = (cols, rows)
    return best


def global_view(image: Image.Image, size: int = GLOBAL_SIZE, fill: tuple[int, int, int] = PAD_COLOR) -> Image.Image:
    """The page contain-resized (BICUBIC) so its long side is `size`, centred on a size x size `fill` canvas.

    This is `ImageOps.pad(image, (size, size), color=fill)` of current Pillow, spelled out so the two rounding
    rules are visible: the short side is `round(short / long * size)` and the offset along the padded axis is
    `round((size - short) * 0.5)`, both with Python's round-half-to-even (older Pillow truncated the offset, and
    the transformers port floors it; the release runs current Pillow). Small pages are upscaled too.
    """
    w, h = image.size
    if w == h:
        resized_size = (size, size)
    elif w > h:
        resized_size = (size, round(h / w * size))
    else:
        resized_size = (round(w / h * size), size)
    resized = image.resize(resized_size, resample=_RESAMPLE)
    if resized.size == (size, size):
        return resized
    canvas = Image.new(image.mode, (size, size), fill)
    if resized.width != size:
        canvas.paste(resized, (round((size - resized.width) * 0.5), 0))
    else:
        canvas.paste(resized, (0, round((size - resized.height) * 0.5)))
    return canvas


def crops(image: Image.Image, grid: tuple[int, int], crop_size: int = CROP_SIZE) -> list[Image.Image]:
    """Local crops: the page squashed (BICUBIC, aspect NOT preserved) to (crop*cols, crop*rows), cut into
    crop x crop tiles in row-major order (left to right, then top to bottom). Grid (1, 1) -> no crops."""
    cols, rows = grid
    if cols * rows <= 1:
        return []
    resized = image.resize((crop_size * cols, crop_size * rows), resample=_RESAMPLE)
    return [
        resized.crop((c * crop_size, r * crop_size, (c + 1) * crop_size, (r + 1) * crop_size))
        for r in range(rows)
        for c in range(cols)
    ]


_DEFAULT = object()  # "use Pillow's Image.MAX_IMAGE_PIXELS as it is at call time"


def load_image(path_or_image: str | os.PathLike | Image.Image, max_pixels: int | None = _DEFAULT) -> Image.Image:
    """Open an image file (or take an open PIL image), apply its EXIF orientation and convert it to RGB.

    `max_pixels`: decompression-bomb limit in pixels (width * height). The default is Pillow's own
    `Image.MAX_IMAGE_PIXELS` (about 89.5 MPx); `None` disables the check. Unlike Pillow, which only warns between
    1x and 2x its limit, anything over the limit is an error here: a batch job should skip such a file, not
    spend minutes and gigabytes decoding it.

    Raises `ImageError` naming the file and the problem for missing, unreadable, corrupt or truncated files and
    for images over the pixel limit. The image is fully decoded here so that corrupt data fails now, with the
    file name, rather than later inside preprocessing.
    """
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is _DEFAULT else max_pixels
    if isinstance(path_or_image, Image.Image):
        name = getattr(path_or_image, "filename", "") or "<in-memory image>"
        try:
            _check_pixels(path_or_image, limit, name)
            return _orient_rgb(path_or_image)
        except ImageError:
            raise
        except Exception as e:  # noqa: BLE001 - Pillow decoders raise many types; all mean "unusable image"
            raise ImageError(f"{name}: cannot decode image ({type(e).__name__}: {e})") from e

    name = os.fspath(path_or_image)
    if not Path(name).is_file():
        raise ImageError(f"{name}: no such file")
    try:
        with warnings.catch_warnings():
            # Pillow checks its own global limit inside `open`: over 1x it warns, over 2x it raises. The warning
            # becomes an error so both are caught below; when the caller allows more pixels than Pillow's
            # default, Pillow's limit is lifted to `limit` for this one header read (see the helper).
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _pillow_limit_at_least(limit):
                im = Image.open(name)
        with im:
            _check_pixels(im, limit, name)  # header only: no pixels decoded yet
            im.load()
            return _orient_rgb(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name}: decompression bomb refused ({e})") from e
    except Image.UnidentifiedImageError as e:
        raise ImageError(f"{name}: not a readable image (unknown or corrupt format)") from e
    except Exception as e:  # noqa: BLE001 - truncated/corrupt data surfaces as OSError, SyntaxError, struct.error...
        raise ImageError(f"{name}: cannot decode image ({type(e).__name__}: {e})") from e


def _check_pixels(image: Image.Image, limit: int | None, name: str) -> None:
    w, h = image.size
    if limit is not None and w * h > limit:
        raise ImageError(f"{name}: decompression bomb refused ({w}x{h} = {w * h} pixels > limit {limit})")


class _pillow_limit_at_least:
    """Temporarily raise Pillow's global MAX_IMAGE_PIXELS to `limit` when the caller allows bigger images.

    Pillow's 2x hard error cannot be switched off per call; this is the only way to honour a larger
    `max_pixels`. It only ever loosens the global, and only for the duration of one `Image.open` (a header
    read); it is not thread-safe, so concurrent loaders in other threads may briefly see the looser limit.
    """

    def __init__(self, limit: int | None):
        self.limit, self.saved = limit, None

    def __enter__(self):
        self.saved = Image.MAX_IMAGE_PIXELS
        if self.saved is not None and (self.limit is None or self.limit > self.saved):
            Image.MAX_IMAGE_PIXELS = self.limit
        return self

    def __exit__(self, *exc):
        Image.MAX_IMAGE_PIXELS = self.saved
        return False


def _orient_rgb(image: Image.Image) -> Image.Image:
    # The release's scripts apply the EXIF orientation before anything else (phone photos are stored sideways
    # with an orientation tag), then a plain `.convert("RGB")` (alpha is dropped, not composited; kept as is).
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8bit_gray(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit grayscale scaled to 0..255. Pillow's own `convert` clips every value above 255, so a 16-bit
    scan (values up to 65535) would become an all-white page."""
    import numpy as np

    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        top = 65535.0
    else:  # "I" (32-bit int) or "F": 16-bit data is the common case; else the image's own range
        peak = float(values.max()) if values.size else 0.0
        top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
    scaled = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, "L")


def to_tensor(image: Image.Image) -> torch.Tensor:
    """(3, H, W) float32 in [-1, 1]: torchvision's ToTensor() then Normalize(mean=0.5, std=0.5).

    Same float32 steps as torchvision (divide by 255, subtract 0.5, divide by 0.5) so the result is bit-identical
    to the release's `ImageTransform`. The pad grey 127 maps to 127/255*2-1 ~ -0.0039, not exactly 0.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    w, h = image.size
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    x = data.view(h, w, 3).permute(2, 0, 1).contiguous().to(torch.float32)
    return x.div(255).sub(0.5).div(0.5)


@dataclass
class PageViews:
    """One page ready for the model: normalised views plus the bookkeeping the prompt needs."""

    global_view: torch.Tensor  # (3, G, G)
    crops: torch.Tensor  # (k, 3, c, c), k = 0 gives shape (0, 3, c, c)
    grid: tuple[int, int]  # (cols, rows); (1, 1) when there are no crops
    num_crops: int  # k = cols * rows, or 0
    image_size: tuple[int, int]  # (width, height) of the page as given


def batch_views(pages: list[PageViews]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Stack pages into the model's input format (see `OCR2Model.forward`).

    Returns `global_views` (N, 3, G, G), `crops` (sum k, 3, c, c) with each page's crops in page order and
    row-major within the page, or None when no page has crops, and `num_crops` (N,) int64. The explicit counts
    replace the release's "all-zero crop tensor means no crops" signal (`torch.sum(patches) == 0` in its code).
    """
    if not pages:
        raise ValueError("batch_views needs at least one page")
    global_views = torch.stack([p.global_view for p in pages])
    num_crops = torch.tensor([p.num_crops for p in pages], dtype=torch.long)
    with_crops = [p.crops for p in pages if p.num_crops]
    return global_views, (torch.cat(with_crops) if with_crops else None), num_crops
