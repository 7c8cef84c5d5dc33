"""One page sample -> one training example (views + input_ids + labels), for both stage modes of the paper (§4.2).

- `single_view` (stage 1, encoder pretraining): the page alone at one fixed resolution, 768² or 1024², contain-
  resized and padded like the release's global view; no crops. Decoder positions: view tokens + 1 separator.
- `multi_crop` (stage 2 and 3): the official preprocessing, a 1024² global view plus 0 or 2..6 crops of 768².
- `resolution_mode` (either stage): one of DeepSeek-OCR v1's token budgets (ocr2.modes: tiny, small, base, large,
  gundam, ocr2), the views exactly as `ocr2.modes.views_for` makes them; it replaces both modes above.

Checks that make a sample unusable raise `BadSample` (see skips.py) in this order: empty text (no image decode
needed), undecodable image, too many tokens for `max_length`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from ocr2.config import OCR2Config
from ocr2.data.markdown import grounded_markdown
from ocr2.data.schema import sample_blocks, sample_relations
from ocr2.data.skips import BadSample
from ocr2.modes import require_query_tables, views_for
from ocr2.processing.image import ImageError, load_image, preprocess, single_view
from ocr2.processing.text import PROMPT_MARKDOWN, Tokenizer, encode_example

# Plain markdown answers (no boxes) go with the release's prompt minus `<|grounding|>`: with that token the
# release answers in grounded form, which is what target="grounded" trains.
PROMPT_PLAIN_MARKDOWN = "<image>\nConvert the document to markdown."
MODES = ("single_view", "multi_crop")
TARGETS = ("markdown", "grounded")


@dataclass
class Example:
    id: str
    input_ids: list[int]
    labels: list[int]
    global_view: torch.Tensor  # (3, S, S)
    crops: torch.Tensor  # (k, 3, c, c)
    num_crops: int
    view_size: int

    def __len__(self) -> int:
        return len(self.input_ids)


def open_image(value: Any, sample_id: str, max_pixels: int | None = None) -> Image.Image:
    """Decode a sample's image (`{"bytes", "path"}` as datasets stores it, raw bytes, a path or a PIL image) to
    RGB; `BadSample("bad_image")` naming the sample when it cannot be used."""
    try:
        if isinstance(value, dict):
            data, path = value.get("bytes"), value.get("path")
            value = data if data else path
        if isinstance(value, (bytes, bytearray)):
            value = Image.open(io.BytesIO(value))
        if value is None:
            raise ImageError("no image bytes or path")
        return load_image(value, max_pixels=max_pixels)
    except BadSample:
        raise
    except ImageError as e:
        raise BadSample("bad_image", f"{sample_id}: {e}") from e
    except Exception as e:  # noqa: BLE001 - Image.open on garbage raises UnidentifiedImageError, OSError, ...
        raise BadSample("bad_image", f"{sample_id}: cannot decode image ({type(e).__name__}: {e})") from e


class ExampleEncoder:
    def __init__(self, tokenizer: Tokenizer, config: OCR2Config, mode: str = "multi_crop", max_length: int = 8192,
                 prompt: str | None = None, target: str = "markdown", max_pixels: int | None = 64_000_000,
                 resolution_mode: str | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown data mode {mode!r}; choose from {MODES}")
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose from {TARGETS}")
        self.tokenizer, self.config, self.mode, self.max_length = tokenizer, config, mode, int(max_length)
        self.target, self.max_pixels = target, max_pixels
        self.resolution_mode = require_query_tables(config, resolution_mode) if resolution_mode else None
        self.prompt = prompt or (PROMPT_MARKDOWN if target == "grounded" else PROMPT_PLAIN_MARKDOWN)

    def answer(self, row: dict[str, Any]) -> str:
        if self.target == "markdown":
            return row.get("markdown") or ""
        blocks = sample_blocks(row)
        if not blocks:
            return ""
        return grounded_markdown(blocks, int(row["width"]), int(row["height"]), sample_relations(row))

    def __call__(self, row: dict[str, Any], view_size: int | None = None) -> Example:
        sample_id = str(row.get("id", "?"))
        answer = self.answer(row)
        if not answer.strip():
            raise BadSample("empty_text", f"{sample_id}: no {self.target} text")
        image = open_image(row.get("image"), sample_id, self.max_pixels)
        if self.resolution_mode is not None:
            views = views_for(image, self.resolution_mode)
            view, crops, num_crops = views.global_view, views.crops, views.num_crops
            size = self.resolution_mode.global_size
            count = self.config.image_token_count(num_crops, size, self.resolution_mode.crop_size)
        elif self.mode == "single_view":
            size = int(view_size or self.config.global_view_size)
            views = single_view(image, size, self.config.crop_size)
            view, crops, num_crops = views.global_view, views.crops, views.num_crops
            count = self.config.image_token_count(0, global_size=size)
        else:
            size = self.config.global_view_size
            views = preprocess(image, size, self.config.crop_size, crop_mode=True)
            view, crops, num_crops = views.global_view, views.crops, views.num_crops
            count = self.config.image_token_count(num_crops)
        input_ids, labels = encode_example(self.tokenizer, self.prompt, answer, [count])
        if len(input_ids) > self.max_length:
            raise BadSample("too_long", f"{sample_id}: {len(input_ids)} tokens ({count} image positions) > "
                                        f"max_length {self.max_length}")
        return Example(sample_id, input_ids, labels, view, crops, num_crops, size)
