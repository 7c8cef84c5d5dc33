"""One page sample -> one training example (views + input_ids + labels).

The views come from a view recipe (ocr2/processing/views.py): the paper's stage 1 trains on single 768² and
1024² views (`single:768`, `single:1024`, cycled batch by batch by the loader), stages 2 and 3 on the release's
`multi_crop` views; DeepSeek-OCR v1's modes (`tiny` ... `gundam`) work the same way. The `<image>` count is the
recipe's own (`ViewRecipe.image_tokens`), so examples and reading agree by construction.

A row's own `prompt` (when present and not empty, see prompts.py) replaces the run-wide one for that sample, so
one dataset can mix tasks (markdown, free OCR, a question about the page).

Checks that make a sample unusable raise `BadSample` (see skips.py) in this order: empty text (no image decode
needed), a prompt that is not text or has several `<image>` tags, undecodable image, too many tokens for
`max_length`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from ocr2.config import OCR2Config
from ocr2.data.markdown import grounded_markdown
from ocr2.data.prompts import sample_prompt
from ocr2.data.schema import sample_blocks, sample_relations
from ocr2.data.skips import BadSample
from ocr2.processing.image import ImageError, load_image
from ocr2.processing.reading import PROMPT_MARKDOWN, PROMPT_PLAIN_MARKDOWN, resolve_prompt
from ocr2.processing.text import Tokenizer, encode_example
from ocr2.processing.views import ViewRecipe
from ocr2.query_tables import require_query_tables

TARGETS = ("markdown", "grounded")


def default_prompt(target: str) -> str:
    """The prompt a target trains with: plain markdown answers go with the release's prompt minus
    `<|grounding|>` (with that token the release answers in grounded form, which is what "grounded" trains)."""
    return PROMPT_MARKDOWN if target == "grounded" else PROMPT_PLAIN_MARKDOWN


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
        if isinstance(value, (list, tuple)):  # a Sequence(Image) column, e.g. ms-swift's "images"
            if len(value) != 1:
                raise BadSample("bad_image", f"{sample_id}: {len(value)} images in one sample; a sample is one page")
            value = value[0]
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
    """Rows -> `Example`s under one or more view recipes (`views`; a row is encoded with the first unless the
    loader asks for another, as stage 1 does when it cycles through sizes)."""

    def __init__(self, tokenizer: Tokenizer, config: OCR2Config, views=("multi_crop",), max_length: int = 8192,
                 prompt: str | None = None, target: str = "markdown", max_pixels: int | None = 64_000_000):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose from {TARGETS}")
        self.tokenizer, self.config, self.max_length = tokenizer, config, int(max_length)
        self.target, self.max_pixels = target, max_pixels
        names = [views] if isinstance(views, (str, ViewRecipe)) else list(views)
        if not names:
            raise ValueError("no view recipe given")
        self.recipes = tuple(require_query_tables(config, v) for v in names)
        self.prompt = resolve_prompt(prompt) if prompt else default_prompt(target)

    def answer(self, row: dict[str, Any]) -> str:
        if self.target == "markdown":
            return row.get("markdown") or ""
        blocks = sample_blocks(row)
        if not blocks:
            return ""
        return grounded_markdown(blocks, int(row["width"]), int(row["height"]), sample_relations(row))

    def __call__(self, row: dict[str, Any], recipe: ViewRecipe | None = None) -> Example:
        sample_id = str(row.get("id", "?"))
        answer = self.answer(row)
        if not answer.strip():
            raise BadSample("empty_text", f"{sample_id}: no {self.target} text")
        prompt = sample_prompt(row.get("prompt"), sample_id) or self.prompt
        image = open_image(row.get("image"), sample_id, self.max_pixels)
        recipe = recipe or self.recipes[0]
        views = recipe.views(image)
        count = recipe.image_tokens(image.size, self.config)
        input_ids, labels = encode_example(self.tokenizer, prompt, answer, [count])
        if len(input_ids) > self.max_length:
            raise BadSample("too_long", f"{sample_id}: {len(input_ids)} tokens ({count} image positions) > "
                                        f"max_length {self.max_length}")
        return Example(sample_id, input_ids, labels, views.global_view, views.crops, views.num_crops,
                       recipe.global_size)
