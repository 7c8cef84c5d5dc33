"""Validation during training: held-out loss every `validation.every` steps, optionally page NED on a few pages read
the way the checkpoint will be read (its reading recipe: views, prompt, decoding), and the best checkpoint kept.

The held-out batches are built once, from `validation.split` of the run's dataset, under the reading recipe's views
and prompt (not the stage's: stage 1 trains on 768² and 1024² views but is read at 1024²), so the loss and the NED
describe the model as `ocr2-infer` will use it. Each rank scores its own share of the batches; the loss is the
mean over ranks. Pages for NED are the first `validation.generate_pages` examples of rank 0's share, decoded
greedily from the example's prompt with the recipe's no-repeat rule; their reference is the example's answer
tokens, decoded. Under ZeRO-3 every rank decodes the same pages (each forward gathers parameters collectively).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import torch
from omegaconf import DictConfig
from rapidfuzz.distance import Levenshtein

from ocr2 import OCR2Config
from ocr2.data.loader import TrainLoader
from ocr2.generation import NoRepeatNGram
from ocr2.processing.reading import ReadingRecipe
from ocr2.processing.text import Tokenizer
from ocr2.tokens import IGNORE_INDEX
from train.data import data_config
from train.dist import DistInfo, sum_over_ranks, to_device

METRICS = ("val_loss", "val_ned")  # lower is better for both


def _batches(cfg: DictConfig, model_cfg: OCR2Config, tokenizer: Tokenizer, reading: ReadingRecipe, rank: int,
             world: int, count: int) -> list[dict]:
    base = data_config(cfg, model_cfg)
    dc = dataclasses.replace(base, split=str(cfg.validation.split), views=(reading.views,), prompt=reading.prompt,
                             shuffle=False, epochs=1, num_workers=0, packing=False)
    try:
        loader = TrainLoader(dc, tokenizer, model_cfg, rank=rank, world_size=world)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"validation.split={dc.split}: {e}; build the dataset with a validation split or "
                                f"set validation.split (or validation.every=0)") from e
    return list(itertools.islice(iter(loader), count))


def _pages(batches: list[dict], count: int) -> list[dict]:
    """One dict per example of the batches: its prompt ids, views and reference answer ids."""
    pages = []
    for batch in batches:
        crops = batch.get("crops")
        counts = [int(c) for c in (batch.get("num_crops") if batch.get("num_crops") is not None
                                   else [0] * batch["global_views"].shape[0])]
        crop_rows = crops.split(counts) if crops is not None and crops.shape[0] else [None] * len(counts)
        for row in range(batch["input_ids"].shape[0]):
            ids, labels = batch["input_ids"][row], batch["labels"][row]
            answer = (labels != IGNORE_INDEX).nonzero()
            if not len(answer):
                continue
            first = int(answer[0])
            keep = batch["attention_mask"][row].bool() if batch.get("attention_mask") is not None else None
            reference = labels[first:][keep[first:]] if keep is not None else labels[first:]
            pages.append({"prompt": ids[:first][None], "global_views": batch["global_views"][row:row + 1],
                          "crops": crop_rows[row] if counts[row] else None, "num_crops": [counts[row]],
                          "reference": reference.tolist()})
            if len(pages) == count:
                return pages
    return pages


class Validator:
    def __init__(self, cfg: DictConfig, model_cfg: OCR2Config, tokenizer: Tokenizer, reading: ReadingRecipe,
                 info: DistInfo, zero_stage: int):
        v = cfg.validation
        self.every, self.tokenizer, self.reading, self.info = int(v.every), tokenizer, reading, info
        self.enabled, self.n_pages = self.every > 0, 0
        best = cfg.checkpoint.get("best_metric")
        if best is not None and best not in METRICS:
            raise ValueError(f"checkpoint.best_metric={best}: choose from {METRICS} (or null)")
        if best is not None and not self.enabled:
            raise ValueError(f"checkpoint.best_metric={best} needs validation: set validation.every > 0")
        if best == "val_ned" and int(v.generate_pages) < 1:
            raise ValueError("checkpoint.best_metric=val_ned needs decoded pages: set validation.generate_pages > 0")
        if not self.enabled:
            return
        self.batches = _batches(cfg, model_cfg, tokenizer, reading, info.rank, info.world_size, int(v.batches))
        n_pages = self.n_pages = int(v.generate_pages)
        # Pages every decoding rank agrees on: rank 0's share (ZeRO-3 needs every rank in every forward).
        self.decodes = n_pages > 0 and (info.is_main or zero_stage == 3)
        self.pages = []
        if self.decodes:
            source = self.batches if info.rank == 0 else _batches(cfg, model_cfg, tokenizer, reading, 0, 1,
                                                                    int(v.batches))
            self.pages = _pages(source, n_pages)
        self.max_new_tokens = int(v.max_new_tokens or reading.max_new_tokens)
        self.no_repeat = None
        if reading.ngram_size:
            whitelist = tuple(tokenizer.token_id(t) for t in ("<td>", "</td>"))
            self.no_repeat = NoRepeatNGram(reading.ngram_size, reading.ngram_window, whitelist)

    def due(self, step: int, max_steps: int) -> bool:
        return self.enabled and (step % self.every == 0 or step == max_steps)

    @torch.no_grad()
    def run(self, engine, device: torch.device, dtype: torch.dtype) -> dict[str, float]:
        """{'val_loss': ..., 'val_ned': ... (when pages are decoded)}; every rank must call it."""
        engine.eval()
        try:
            total, n = 0.0, 0
            for batch in self.batches:
                out = engine(**to_device(batch, device, dtype))
                total, n = total + float(out.lm_loss), n + 1
            losses, counts = sum_over_ranks(total), sum_over_ranks(n)
            result = {"val_loss": losses / counts if counts else math.nan}
            if self.n_pages:
                ned = self._ned(engine.module, device, dtype) if self.decodes else 0.0
                # Rank 0's figure on every rank: the best-checkpoint decision (a collective save) must agree.
                result["val_ned"] = sum_over_ranks(ned if self.info.is_main else 0.0)
        finally:
            engine.train()
        return result

    def _ned(self, model, device, dtype) -> float:
        tok, scores = self.tokenizer, []
        for page in self.pages:
            crops = page["crops"].to(device, dtype) if page["crops"] is not None else None
            new = model.generate(page["prompt"].to(device), page["global_views"].to(device, dtype), crops,
                                 page["num_crops"], max_new_tokens=self.max_new_tokens, eos_token_id=tok.eos_id,
                                 logits_processor=self.no_repeat)[0].tolist()
            new = new[: new.index(tok.eos_id)] if tok.eos_id in new else new
            ref = [t for t in page["reference"] if t != tok.eos_id]
            scores.append(Levenshtein.normalized_distance(tok.decode(new, skip_special_tokens=True),
                                                          tok.decode(ref, skip_special_tokens=True)))
        return sum(scores) / len(scores) if scores else math.nan
