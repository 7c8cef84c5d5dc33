"""The page sample schema shared by every dataset builder (synthetic, OmniDocBench, folder, jsonl, hf, pdf) and the
loader.

One row per page. The ground truth follows OmniDocBench's JSON (`OmniDocBench.json`) so the same
evaluator reads synthetic and real pages: `blocks` is the page's `layout_dets` list and `relations` its
`extra.relation` list, both stored as JSON strings because their nested, optional fields (`html`, `latex`,
`order: null`, `line_with_spans`) do not fit one Arrow struct type.
"""

from __future__ import annotations

import json
from typing import Any

from .skips import BadSample

# column -> meaning; the Arrow types are in `sample_features`.
COLUMNS = {
    "id": "unique page id within the dataset",
    "image": "the page image (datasets Image feature: PNG/JPEG bytes)",
    "markdown": "the page in reading order: titles '# ', tables as HTML, display formulas as $$..$$",
    "blocks": "JSON list of OmniDocBench blocks: category_type, poly (8 numbers, pixels), text/html/latex, order",
    "relations": "JSON list of OmniDocBench relations ({source_anno_id, target_anno_id, relation_type})",
    "source": "where the page comes from: synthetic | omnidocbench | folder:<name> | jsonl:<manifest> | hf:<name> | "
              "pdf:<folder>",
    "lang": "main language: en | zh | mixed | unknown",
    "width": "image width in pixels",
    "height": "image height in pixels",
    # Optional (datasets built before it lack it; the loader reads it when present): see ocr2/data/prompts.py.
    "prompt": "the sample's own prompt (literal text with one <image>), or null: the run's data.prompt applies",
}


def sample_features():
    """The `datasets.Features` of a page dataset (import of `datasets` deferred: it is slow and optional here)."""
    from datasets import Features, Image, Value

    return Features({
        "id": Value("string"), "image": Image(), "markdown": Value("string"), "blocks": Value("string"),
        "relations": Value("string"), "source": Value("string"), "lang": Value("string"),
        "width": Value("int32"), "height": Value("int32"), "prompt": Value("string"),
    })


def make_sample(id: str, image: Any, markdown: str, blocks: list[dict], relations: list[dict] | None = None,
                source: str = "", lang: str = "unknown", width: int | None = None, height: int | None = None,
                prompt: str | None = None) -> dict[str, Any]:
    """A row of the schema. `image` is a PIL image or `{"bytes": ..., "path": ...}`; width/height default to the
    PIL image's size; `prompt` None: the run-wide prompt applies to this page."""
    if width is None or height is None:
        width, height = image.size
    return {"id": id, "image": image, "markdown": markdown, "blocks": json.dumps(blocks, ensure_ascii=False),
            "relations": json.dumps(relations or [], ensure_ascii=False), "source": source, "lang": lang,
            "width": int(width), "height": int(height), "prompt": prompt}


def _decoded(row: dict[str, Any], column: str) -> list[dict]:
    value = row.get(column) or "[]"
    if not isinstance(value, str):
        return list(value)
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:  # a skippable sample, named, not a traceback from the json module
        raise BadSample("bad_record", f"sample {row.get('id', '?')}: its {column} are not JSON ({e})") from None


def sample_blocks(row: dict[str, Any]) -> list[dict]:
    """The decoded `blocks` of a row (accepts an already decoded list); BadSample("bad_record") if not JSON."""
    return _decoded(row, "blocks")


def sample_relations(row: dict[str, Any]) -> list[dict]:
    return _decoded(row, "relations")
