"""Examples -> model inputs (`OCR2Model.forward` keyword arguments), padded or packed.

- Padded batches: one sample per row, RIGHT padding; `attention_mask` 0 and `labels` -100 on pads.
- Packed batches (stage 1, which the DeepSeek-OCR 2 paper §4.2 trains with 8K sequence packing): several samples
  per row, each starting with its own BOS; `position_ids` restart at 0 for every sample and `sequence_ids` give
  each token's sample index within its row (-1 on padding), so the decoder's attention is block-diagonal causal
  and never crosses samples. Labels need no extra masking at the seams: the next sample starts with its prompt,
  whose labels are already -100.

Images go in the order their `<image>` placeholders appear in the flattened batch (row by row, sample by
sample), which is the order `OCR2Model.embed_inputs` scatters them in.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ocr2.data.examples import Example
from ocr2.tokens import IGNORE_INDEX


def _images(examples: Sequence[Example]) -> dict[str, torch.Tensor | None]:
    sizes = {e.global_view.shape[-1] for e in examples}
    if len(sizes) != 1:
        raise ValueError(f"one batch mixes view sizes {sorted(sizes)}; batch single-view samples by resolution")
    with_crops = [e.crops for e in examples if e.num_crops]
    return {"global_views": torch.stack([e.global_view for e in examples]),
            "crops": torch.cat(with_crops) if with_crops else None,
            "num_crops": torch.tensor([e.num_crops for e in examples], dtype=torch.long)}


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor | None]:
    """One sample per row, right-padded to the longest."""
    if not examples:
        raise ValueError("collate needs at least one example")
    length = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e)
        input_ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, **_images(examples)}


def collate_packed(rows: Sequence[Sequence[Example]], pad_id: int) -> dict[str, torch.Tensor | None]:
    """Several samples per row, right-padded to the longest row, with per-sample positions and sequence ids."""
    if not rows or not all(rows):
        raise ValueError("collate_packed needs at least one non-empty row")
    length = max(sum(len(e) for e in row) for row in rows)
    shape = (len(rows), length)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    sequence_ids = torch.full(shape, -1, dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for s, e in enumerate(row):
            n = len(e)
            input_ids[r, at:at + n] = torch.tensor(e.input_ids)
            labels[r, at:at + n] = torch.tensor(e.labels)
            attention_mask[r, at:at + n] = 1
            position_ids[r, at:at + n] = torch.arange(n)
            sequence_ids[r, at:at + n] = s
            at += n
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "position_ids": position_ids, "sequence_ids": sequence_ids,
            **_images([e for row in rows for e in row])}


class BatchBuilder:
    """Accumulates examples into one batch: `batch_size` samples, or with `packing` `batch_size` rows of at most
    `max_length` tokens filled greedily in arrival order (next-fit: a sample that does not fit the current row
    opens the next one, so the stream order is kept and resuming stays exact)."""

    def __init__(self, batch_size: int, pad_id: int, packing: bool = False, max_length: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if packing and not max_length:
            raise ValueError("packing needs max_length (tokens per packed row)")
        self.batch_size, self.pad_id, self.packing, self.max_length = batch_size, pad_id, packing, max_length
        self.rows: list[list[Example]] = []

    def __len__(self) -> int:
        """Samples held."""
        return sum(len(r) for r in self.rows)

    def add(self, example: Example) -> bool:
        """Take the example if it fits; False means the batch is complete and the example belongs to the next."""
        if not self.packing:
            if len(self.rows) >= self.batch_size:
                return False
            self.rows.append([example])
            return True
        if self.rows and sum(len(e) for e in self.rows[-1]) + len(example) <= self.max_length:
            self.rows[-1].append(example)
            return True
        if len(self.rows) >= self.batch_size:
            return False
        self.rows.append([example])
        return True

    def full(self) -> bool:
        """True when no further sample can fit (unpacked: batch_size samples held)."""
        return not self.packing and len(self.rows) >= self.batch_size

    def build(self) -> tuple[dict[str, torch.Tensor | None], list[str]]:
        """The batch and its sample ids; the builder is emptied."""
        rows, self.rows = self.rows, []
        ids = [e.id for row in rows for e in row]
        if self.packing:
            return collate_packed(rows, self.pad_id), ids
        return collate([row[0] for row in rows], self.pad_id), ids
