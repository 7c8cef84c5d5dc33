"""A sample's own prompt: a row's `prompt` (when present and not empty) replaces the run-wide `data.prompt`.

Rows hold literal prompt text (never a prompt *name*: a dataset's "free_ocr" is text, not a reference). The
release's prompts put the page first, `<image>\\n<instruction>`, so a prompt without an `<image>` tag gets
`<image>\\n` in front; a prompt that is only the tag (ms-swift's `"<image>"` user turn) has no instruction of its own
and leaves the run-wide prompt in force. One page per sample, so more than one tag is a bad sample.
"""

from __future__ import annotations

from typing import Any

from ocr2.data.skips import BadSample
from ocr2.tokens import IMAGE_TOKEN


def sample_prompt(value: Any, sample_id: str = "?") -> str | None:
    """The literal prompt a row asks for, or None when the run-wide prompt applies."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadSample("bad_prompt", f"{sample_id}: prompt is {type(value).__name__}, expected text")
    if not value.replace(IMAGE_TOKEN, "").strip():
        return None
    tags = value.count(IMAGE_TOKEN)
    if tags == 0:
        return f"{IMAGE_TOKEN}\n{value}"
    if tags > 1:
        raise BadSample("bad_prompt", f"{sample_id}: prompt has {tags} {IMAGE_TOKEN} tags; a sample is one page, "
                                      f"so its prompt takes exactly one")
    return value
