"""Checkpoint x pages -> predictions, scores and the protocol that produced them.

Every score is stored with its protocol (prompt, view recipe, decoding settings, post-processing, metric version),
because published OCR numbers are not reproducible without it: the same checkpoint scores differently with another
prompt, another crop setting or another no-repeat rule.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
import time
from pathlib import Path

from eval.metrics import PROTOCOL as METRIC_PROTOCOL
from eval.metrics import evaluate_pages, is_repetitive, normalized_edit_distance
from eval.pages import EvalPage
from ocr2.pipeline import OCRPipeline


def protocol(pipe: OCRPipeline, checkpoint: str, dataset: str, split: str) -> dict:
    nr = pipe.no_repeat
    return {
        "checkpoint": str(checkpoint), "dataset": str(dataset), "split": split,
        "prompt": pipe.prompt, "views": pipe.recipe.name,
        "decoding": {"method": "greedy", "max_new_tokens": pipe.max_new_tokens,
                     "no_repeat_ngram": None if nr is None else {"n": nr.n, "window": nr.window,
                                                                 "whitelist": sorted(nr.whitelist)}},
        "post_processing": "ocr2.grounding.strip_grounding (ref/det spans removed, 3+ newlines collapsed)",
        "metrics": METRIC_PROTOCOL,
        "model": {"global_view_size": pipe.model.config.global_view_size, "crop_size": pipe.model.config.crop_size,
                  "mask": pipe.model.config.encoder.mask, "query_ratio": pipe.model.config.encoder.query_ratio},
    }


def score(pages: list[EvalPage], markdown: dict[str, str], hit_limit: dict[str, bool]) -> dict:
    """OmniDocBench-style figures plus whole-page NED on the markdown and the repetition rate."""
    omni = evaluate_pages(markdown, [p.gt_page for p in pages])
    page_ned = {p.stem: normalized_edit_distance(markdown[p.stem], p.markdown) for p in pages}
    rep = {p.stem: is_repetitive(markdown[p.stem], hit_limit[p.stem]) for p in pages}
    summary = dict(omni["summary"])
    summary.update(page_ned=statistics.fmean(page_ned.values()) if page_ned else None,
                   repetition_rate=sum(rep.values()) / len(rep) if rep else None, pages=len(pages))
    return {"summary": summary, "omnidocbench": {k: v for k, v in omni.items() if k != "pages"},
            "pages": {s: dict(omni["pages"].get(s, {}), page_ned=page_ned[s], repetitive=rep[s]) for s in page_ned}}


def evaluate(pipe: OCRPipeline, pages: list[EvalPage], out_dir: Path | None = None, progress: bool = True,
             info: dict | None = None) -> dict:
    # Predictions are keyed by sample id (predictions/<id>.md, as OmniDocBench lays them out): two pages with one
    # id would be scored against one prediction.
    repeated = sorted(stem for stem, n in Counter(p.stem for p in pages).items() if n > 1)
    if repeated:
        raise ValueError(f"{len(repeated)} sample id(s) occur more than once, e.g. {repeated[:5]}: give every page "
                         f"its own id (the dataset's `id` column)")
    start = time.perf_counter()
    results = pipe.read_images([(p.stem, p.image) for p in pages], progress=progress)
    markdown = {r.source: r.markdown for r in results}
    hit = {r.source: r.hit_token_limit for r in results}
    report = score(pages, markdown, hit)
    report["protocol"] = info or {}
    report["timing"] = {"seconds": time.perf_counter() - start,
                        "generated_tokens": sum(r.generated_tokens for r in results)}
    if out_dir is not None:
        out_dir = Path(out_dir)
        (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
        for r in results:  # the OmniDocBench file layout: <image stem>.md
            (out_dir / "predictions" / f"{r.source}.md").write_text(r.markdown + "\n")
        (out_dir / "metrics.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    return report
