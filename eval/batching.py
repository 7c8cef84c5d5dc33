"""Batches of pages with the same number of views, so that no page in a batch is padded with empty crops.

Under a cropping view recipe a page's crop count follows from its size (ocr2/processing/views.py, `num_crops`);
pages are held back in one bucket per count (at most `window` pages in all, images not decoded) and a bucket
goes out when it holds `batch_size` pages, or - when the window is full - the fullest bucket goes out as it is.
Pages whose size is unknown are measured when their image is decoded for it (then dropped again).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def view_batches(pages: Iterable[T], views_of: Callable[[T], int], batch_size: int,
                 window: int | None = None) -> Iterator[list[T]]:
    """Batches of at most `batch_size` pages sharing `views_of(page)`; every page comes out exactly once."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    window = max(window or 8 * batch_size, batch_size)
    buckets: dict[int, list[T]] = {}
    held = 0
    for page in pages:
        key = views_of(page)
        bucket = buckets.setdefault(key, [])
        bucket.append(page)
        held += 1
        if len(bucket) == batch_size:
            held -= len(bucket)
            yield buckets.pop(key)
        elif held >= window:
            fullest = max(buckets, key=lambda k: len(buckets[k]))
            held -= len(buckets[fullest])
            yield buckets.pop(fullest)
    for key in sorted(buckets):
        yield buckets[key]
