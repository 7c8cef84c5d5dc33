"""`ocr2-data jsonl`: a JSONL manifest (one page per line) -> the page dataset schema.

Image paths are relative to the manifest's folder (absolute paths work too). Blank lines are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from data_pipelines.records import Bad, Page, RecordProblem, build_records, image_from_file, page_row
from ocr2.data.prompts import sample_prompt
from ocr2.data.skips import BadSample
from ocr2.tokens import IMAGE_TOKEN

FORMAT = """\
manifest format (one JSON object per line, image paths relative to the manifest's folder):
  {"image": "scans/p1.png", "markdown": "# Title\\n\\nText ..."}
  {"image": "scans/p2.png", "markdown": "...", "prompt": "Free OCR.", "id": "p2"}
  {"messages": [{"role": "user", "content": "<image>Free OCR."},
                {"role": "assistant", "content": "# Title\\n\\nText ..."}], "images": ["scans/p3.png"]}
  {"query": "<image>Free OCR.", "response": "...", "images": ["scans/p4.png"]}
keys: image (or images: a list of one) + markdown (or text); optional prompt, id. The last two lines are
ms-swift's forms: the user turn (query) without its <image> tag is the sample's prompt ("<image>" alone: none),
the assistant turn (response) is the markdown.
one page per record: a record with several images (a multi-page document) is refused - write one record per page
(train on documents page by page, as the model reads them). No system turn, one user + one assistant turn.
prompt: literal text; without an <image> tag it is read as "<image>\\n<prompt>" (the page first, like the
release's prompts); records without one train with data.prompt.
id: optional; default the image path (repeated images: <path>#2, #3, ...).
bad records (bad JSON, missing keys, missing or unreadable images, empty markdown) are skipped, counted and
logged with the manifest file and line number; --strict stops at the first one instead."""


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RecordProblem("bad_record", f"{what} is {type(value).__name__}, expected text")
    return value


def _swift_turns(record: dict) -> tuple[str, str]:
    """(user content, assistant content) of ms-swift's messages (or query/response) form."""
    if "messages" not in record:
        return _text(record.get("query"), "query"), _text(record.get("response"), "response")
    messages = record["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise RecordProblem("bad_record", "messages must be a list of {\"role\", \"content\"} objects")
    roles = [m.get("role") for m in messages]
    if roles != ["user", "assistant"]:
        raise RecordProblem("bad_record", f"messages have roles {roles}; a page is one user turn (the image and "
                                          f"prompt) and one assistant turn (its markdown), with no system turn")
    return _text(messages[0].get("content"), "the user content"), _text(messages[1].get("content"),
                                                                       "the assistant content")


def parse_record(record: Any) -> tuple[str, str, str | None]:
    """(image path, markdown, prompt or None) of one manifest record, in any of its forms."""
    if not isinstance(record, dict):
        raise RecordProblem("bad_record", f"a record is a JSON object, got {type(record).__name__}")
    swift = "messages" in record or "query" in record
    if swift:
        user, markdown = _swift_turns(record)
        if user.count(IMAGE_TOKEN) > 1:
            raise RecordProblem("bad_record", f"the user turn has {user.count(IMAGE_TOKEN)} {IMAGE_TOKEN} tags; "
                                              "one page per record")
        prompt: Any = user
    else:
        if "markdown" not in record and "text" not in record:
            raise RecordProblem("bad_record", f"no 'markdown' key (keys: {sorted(record)}); expected "
                                              "{\"image\": ..., \"markdown\": ...} or ms-swift's {\"messages\": ...,"
                                              " \"images\": [...]}")
        markdown = record["markdown"] if "markdown" in record else record["text"]
        prompt = record.get("prompt")
    images = record.get("images", [record["image"]] if "image" in record else None)
    if images is None:
        raise RecordProblem("bad_record", f"no 'image' or 'images' key (keys: {sorted(record)})")
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or len(images) != 1:
        n = len(images) if isinstance(images, list) else type(images).__name__
        raise RecordProblem("bad_record", f"images holds {n}; one page per record: split a multi-page document "
                                          "into one record per page")
    image = images[0]
    if isinstance(image, dict):  # ms-swift also accepts {"path": ...}
        image = image.get("path")
    if not isinstance(image, str) or not image:
        raise RecordProblem("bad_record", f"the image must be a file path, got {image!r}")
    if image.startswith(("http://", "https://")):
        raise RecordProblem("bad_record", f"{image}: URLs are not fetched; download the images and name the files")
    try:
        prompt = sample_prompt(prompt)
    except BadSample as e:
        raise RecordProblem(e.reason, e.detail.removeprefix("?: ")) from e
    return image, markdown, prompt


def jsonl_records(manifest: str | Path, split: str | None = None) -> Iterator[Page | Bad]:
    """Every non-blank line of the manifest as a Page or, naming the file and line, a Bad."""
    manifest = Path(manifest)
    root = manifest.parent
    uses: dict[str, int] = {}
    with open(manifest, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{manifest} line {lineno}"
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8").strip()
                if not text:
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as e:
                    raise RecordProblem("bad_record", f"not JSON ({e.msg} at column {e.colno})") from e
                image, markdown, prompt = parse_record(record)
                stored, decoded = image_from_file(Path(image) if Path(image).is_absolute() else root / image)
                uses[image] = uses.get(image, 0) + 1
                rid = record.get("id")
                rid = str(rid) if rid not in (None, "") else image + (f"#{uses[image]}" if uses[image] > 1 else "")
                row = page_row(rid, stored, decoded, markdown, prompt, f"jsonl:{manifest.name}")
            except UnicodeDecodeError as e:
                yield Bad(where, "bad_record", f"not UTF-8 text ({e})")
                continue
            except RecordProblem as e:
                yield Bad(where, e.reason, e.detail)
                continue
            yield Page(where, image, row, split)


def build_jsonl(out_dir: str | Path, manifest: str | Path, split: str | None = None,
                validation_fraction: float = 0.05, strict: bool = False, rows_per_shard: int = 1000,
                row_group_size: int = 64, command: str = "") -> dict[str, Any]:
    if not Path(manifest).is_file():
        raise FileNotFoundError(f"{manifest}: no such manifest file")
    info = {"builder": "jsonl", "command": command, "manifest": str(manifest)}
    return build_records(out_dir, jsonl_records(manifest, split), f"jsonl {manifest}", info,
                         (split,) if split else ("train", "validation"), validation_fraction, strict,
                         rows_per_shard, row_group_size)
