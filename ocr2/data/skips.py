"""Bad-sample accounting: a long run skips an unusable page, counts it by reason and says so, instead of dying.

A page is skipped for one of the `REASONS` (an open set: other checks may add their own). The first few pages of
each reason are logged with their id and the problem, then one line every `log_every`, so a poisoned shard is
visible in the log early without flooding it; `report()` gives the totals for the end of a run.
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("ocr2.data")

REASONS = {
    "bad_image": "image bytes missing, corrupt, truncated or over the pixel limit",
    "empty_text": "no ground-truth text (markdown empty or whitespace)",
    "too_long": "prompt + image placeholders + answer exceed the token budget (max_length)",
    "encode_error": "decoded, but making its views or tokens failed (e.g. a 10000x4 page); the error is logged",
    "bad_markdown": "the ground-truth file is not UTF-8 text (binary data), so it cannot be a target",
    "bad_prompt": "the sample's own prompt is not text or has more than one <image> tag",
    "bad_record": "a manifest line / dataset row that cannot be read as a page (bad JSON, missing or wrong keys)",
    "missing_image": "the record names an image file that does not exist",
}


class BadSample(ValueError):
    """Raised by a sample check; the caller skips the sample and counts `reason`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class SkipCounter:
    """Counts skipped samples by reason. Cheap to pickle (it travels with loader state and worker batches)."""

    def __init__(self, counts: dict[str, int] | None = None, log_first: int = 3, log_every: int = 1000):
        self._counts: Counter[str] = Counter(counts or {})
        self.log_first, self.log_every = log_first, log_every

    def add(self, reason: str, sample_id: str, detail: str = "") -> None:
        self._counts[reason] += 1
        n = self._counts[reason]
        if n <= self.log_first or n % self.log_every == 0:
            log.warning("skipped sample %s (%s, %d so far): %s", sample_id, reason, n, detail)

    def counts(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def report(self) -> str:
        if not self._counts:
            return "no samples skipped"
        parts = ", ".join(f"{reason}={n}" for reason, n in sorted(self._counts.items()))
        return f"skipped {self.total} samples: {parts}"


def merge_counts(*counts: dict[str, int]) -> dict[str, int]:
    """Sum several reason -> count maps (e.g. one per loader worker)."""
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(sorted(total.items()))
