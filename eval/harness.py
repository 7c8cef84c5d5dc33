"""Checkpoint x pages -> predictions, scores and the protocol that produced them.

Every score is stored with its protocol (prompt, view recipe, decoding settings, post-processing, metric version),
because published OCR numbers are not reproducible without it: the same checkpoint scores differently with another
prompt, another crop setting or another no-repeat rule.

Pages stream through (eval/pages.py, eval/official_layout.py): batches of pages with the same view count
(eval/batching.py) are read, and each page's prediction (`predictions/<stem>.md`, the OmniDocBench layout) and
record (`pages.jsonl`: token-limit hit, tokens, error) are written as soon as its batch is done, then scored; only
the per-page figures stay in memory. A rerun into the same folder resumes: pages with both a prediction and a
record are scored from disk, not read again - under the same protocol only (protocol.json; predictions of another
checkpoint or reading setting are moved to superseded/<n>/, never mixed in). A page that fails (undecodable image, a model error) is scored as
an empty prediction and reported, and read again by the next run.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

from eval.batching import view_batches
from eval.metrics import PROTOCOL as METRIC_PROTOCOL
from eval.metrics import aggregate, is_repetitive, normalized_edit_distance, overall_score, score_page
from eval.metrics.cdm import formula_cdm
from eval.metrics.cdm_tools import cdm_status
from eval.metrics.omnidocbench_groups import attribute_labels, group_figures, split_groups
from eval.pages import EvalPage
from eval.progress import Progress
from ocr2.json_lines import read_json_lines
from ocr2.pipeline import OCRPipeline
from ocr2.weights import resolve_model_dir

RECORDS = "pages.jsonl"
PROTOCOL_FILE = "protocol.json"
PAGE_KEYS = ("text_edit", "text_edit_official_index_bug", "formula_edit", "reading_order_edit", "table_teds",
             "table_teds_s", "table_edit", "num_gt_text_blocks", "num_pred_blocks", "num_latex_tables_not_scored")


def _checkpoint_dir(checkpoint: str) -> str:
    """The directory the weights were read from (a run directory resolves to its latest checkpoint), so a run
    that trained further is another protocol."""
    if not Path(checkpoint).exists():
        return str(checkpoint)  # a Hub id resolved by the caller, or a stand-in: the name as given
    try:
        return str(resolve_model_dir(checkpoint))
    except Exception:  # noqa: BLE001 - not resolvable (a test stand-in): the name as given
        return str(checkpoint)


def protocol(pipe: OCRPipeline, checkpoint: str, dataset: str, split: str | None, layout: str = "ocr2") -> dict:
    nr = pipe.no_repeat
    return {
        "checkpoint": str(checkpoint), "checkpoint_dir": _checkpoint_dir(checkpoint), "dataset": str(dataset),
        "dataset_layout": layout, "split": split,
        "prompt": pipe.prompt, "views": pipe.recipe.name,
        "decoding": {"method": "greedy", "max_new_tokens": pipe.max_new_tokens,
                     "no_repeat_ngram": None if nr is None else {"n": nr.n, "window": nr.window,
                                                                 "whitelist": sorted(nr.whitelist)}},
        "batching": {"batch_size": pipe.batch_size, "grouped_by": "view count (eval/batching.py)"},
        "post_processing": "ocr2.grounding.strip_grounding (ref/det spans removed, 3+ newlines collapsed)",
        "metrics": METRIC_PROTOCOL,
        "model": {"global_view_size": pipe.model.config.global_view_size, "crop_size": pipe.model.config.crop_size,
                  "mask": pipe.model.config.encoder.mask, "query_ratio": pipe.model.config.encoder.query_ratio},
    }


class _Store:
    """predictions/<stem>.md, pages.jsonl and protocol.json under `out_dir` (nothing when out_dir is None).
    Predictions made under another protocol (another checkpoint, prompt, views, decoding...) are never resumed
    from: they are moved to `superseded/<n>/` (kept, not mixed in) and the pages are read again."""

    def __init__(self, out_dir: Path | None, info: dict | None = None):
        self.dir = out_dir
        self.records: dict[str, dict] = {}
        if out_dir is None:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self._supersede_if_other_protocol(json.loads(json.dumps(info or {}, default=str)))
        (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
        path = out_dir / RECORDS
        if path.is_file():  # a line torn by a kill mid-write is left out: that page is read again
            self.records.update((rec["stem"], rec) for rec in read_json_lines(path))

    def _supersede_if_other_protocol(self, info: dict) -> None:
        path = self.dir / PROTOCOL_FILE
        previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        had_outputs = (self.dir / RECORDS).is_file() or (self.dir / "predictions").is_dir()
        if had_outputs and previous != info:
            n = 1
            while (self.dir / "superseded" / str(n)).exists():
                n += 1
            target = self.dir / "superseded" / str(n)
            target.mkdir(parents=True)
            for name in ("predictions", RECORDS, PROTOCOL_FILE, "metrics.json", "summary.md"):
                if (self.dir / name).exists():
                    os.replace(self.dir / name, target / name)
            changed = sorted(k for k in set(info) | set(previous or {}) if info.get(k) != (previous or {}).get(k))
            print(f"ocr2-eval: {self.dir} held predictions of another protocol (differs in {changed or 'unknown'});"
                  f" moved to {target}, reading every page again", file=sys.stderr, flush=True)
        path.write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")

    def _md(self, stem: str) -> Path:
        return self.dir / "predictions" / f"{stem}.md"

    def done(self, stem: str) -> str | None:
        """The stored prediction of a page read without error by an earlier run, else None."""
        if self.dir is None or stem not in self.records or self.records[stem].get("error"):
            return None
        path = self._md(stem)
        if not path.is_file():
            return None
        # bytes, not text mode: universal newlines would turn a generated "\r" into "\n" and the resumed page
        # would score differently from the page as it was read
        text = path.read_bytes().decode("utf-8")
        return text[:-1] if text.endswith("\n") else text  # the newline save() adds

    def save(self, stem: str, markdown: str, record: dict) -> None:
        self.records[stem] = record
        if self.dir is None:
            return
        if record.get("error") is None:
            self._md(stem).write_bytes((markdown + "\n").encode("utf-8"))
        with open(self.dir / RECORDS, "a", encoding="utf-8") as f:  # after the .md: a record means it is there
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()


def _views_of(pipe: OCRPipeline):
    def count(page: EvalPage) -> int:
        try:
            return pipe.recipe.num_crops(page.size or page.image.size)
        except Exception:  # noqa: BLE001 - an undecodable image: its error is reported when the batch reads it
            return -1
    return count


def _read_batch(pipe: OCRPipeline, batch: list[EvalPage]) -> list[tuple[EvalPage, str, dict]]:
    """(page, markdown, record) for each page of a batch; decode failures are the page's error."""
    images, out = [], []
    for page in batch:
        try:
            images.append((page, page.image))
        except Exception as e:  # noqa: BLE001 - BadSample, missing file, ...: this page only
            out.append((page, "", {"stem": page.stem, "error": str(e), "hit_token_limit": False}))
    results = pipe.read_images([(p.stem, img) for p, img in images], progress=False) if images else []
    for (page, _), r in zip(images, results):
        out.append((page, r.markdown, {"stem": page.stem, "error": r.error, "hit_token_limit": r.hit_token_limit,
                                       "generated_tokens": r.generated_tokens, "seconds": round(r.seconds, 4)}))
    return out


def _page_entry(page: EvalPage, markdown: str, record: dict) -> dict:
    figures = score_page(markdown, page.gt_page, page.stem)
    figures["page_ned"] = None if page.markdown is None else normalized_edit_distance(markdown, page.markdown)
    figures["repetitive"] = is_repetitive(markdown, bool(record.get("hit_token_limit")))
    figures["attributes"] = attribute_labels(page.attributes)
    return figures


def _check_unique(pages) -> None:
    repeated = sorted(stem for stem, n in Counter(p.stem for p in pages).items() if n > 1)
    if repeated:
        raise ValueError(f"{len(repeated)} sample id(s) occur more than once, e.g. {repeated[:5]}: give every page "
                         f"its own id (the dataset's `id` column)")


def report_from(entries: dict[str, dict], records: dict[str, dict]) -> dict:
    """metrics.json's scores from the per-page entries: summary, benchmark aggregates, page types, attributes."""
    omni = aggregate(entries)
    neds = [e["page_ned"] for e in entries.values() if e["page_ned"] is not None]
    rep = {s: e["repetitive"] for s, e in entries.items()}
    summary = dict(omni["summary"])
    summary.update(page_ned=statistics.fmean(neds) if neds else None,
                   repetition_rate=sum(rep.values()) / len(rep) if rep else None, pages=len(entries))
    by_type, by_attribute = split_groups(group_figures(entries, {s: e["attributes"] for s, e in entries.items()},
                                                       rep))
    pages = {s: {k: e.get(k) for k in PAGE_KEYS} | {"teds": [t["teds"] for t in e["tables"]],
                                                     "page_ned": e["page_ned"], "repetitive": e["repetitive"],
                                                     "hit_token_limit": bool(records.get(s, {}).get("hit_token_limit")),
                                                     "attributes": e["attributes"]}
             for s, e in entries.items()}
    return {"summary": summary, "omnidocbench": {k: v for k, v in omni.items() if k != "pages"},
            "by_page_type": by_type, "by_attribute": by_attribute, "pages": pages}


def add_cdm(report: dict, entries: dict[str, dict], cdm: dict | None, workdir: Path | None,
            progress: bool = True) -> None:
    """CDM and Overall into the report when the tools are there (cdm: {"odb", "python", "workers"}); else a
    plain statement of what is missing, in `report["cdm"]` and as the reason Overall is absent."""
    cdm = dict(cdm or {})
    status = cdm_status(cdm.get("odb"), cdm.get("python"))
    pairs = [tuple(p) for e in entries.values() for p in e.get("formula_latex", [])]
    report["cdm"] = {**status, "pairs": len(pairs), "CDM": None}
    if status["available"] and pairs:
        result = formula_cdm(pairs, cdm["odb"], cdm["python"], (workdir or Path(".")) / "cdm",
                             int(cdm.get("workers") or 4), progress)
        report["cdm"]["CDM"] = result["CDM"]
        summary = report["summary"]
        summary["formula_cdm"] = result["CDM"]
        summary["overall"] = overall_score(summary["text_edit"], summary["table_teds"], result["CDM"])
        report["omnidocbench"]["display_formula"].update(CDM=result["CDM"], CDM_reason=None)
        report["omnidocbench"]["overall_reason"] = None
        # what the official code as released prints (its text index bug; docs/omnidocbench_agreement.md)
        report["omnidocbench"]["overall_official_index_bug"] = overall_score(
            report["omnidocbench"]["text_block"]["ALL_page_avg_official_index_bug"], summary["table_teds"],
            result["CDM"])
    else:
        reason = status["reason"] if not status["available"] else "CDM not computed: no display-formula pairs"
        report["cdm"]["reason"] = reason
        report["omnidocbench"]["display_formula"]["CDM_reason"] = reason
        report["omnidocbench"]["overall_reason"] = reason


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def evaluate(pipe: OCRPipeline, pages: Iterable[EvalPage], out_dir: Path | None = None, progress: bool = True,
             info: dict | None = None, total: int | None = None, cdm: dict | None = None) -> dict:
    """Read, write and score `pages` (any iterable; a list is checked for repeated ids up front, a stream as it
    goes); with `out_dir`, resume from and write to it, and write metrics.json there at the end. `cdm`: where
    the official CDM is ({"odb", "python", "workers"}; eval/metrics/cdm.py) - without it, or without its
    tools, CDM and Overall are not computed and metrics.json says why."""
    if isinstance(pages, (list, tuple)):
        _check_unique(pages)
        total = len(pages) if total is None else total
    out_dir = Path(out_dir) if out_dir is not None else None
    store, bar = _Store(out_dir, info), Progress(total, progress)
    entries: dict[str, dict] = {}
    errors: dict[str, str] = {}
    start, tokens = time.perf_counter(), 0

    def to_read():
        seen = set()
        for page in pages:
            if page.stem in seen:
                raise ValueError(f"sample id {page.stem!r} occurs more than once: give every page its own id "
                                 f"(the dataset's `id` column)")
            seen.add(page.stem)
            stored = store.done(page.stem)
            if stored is None:
                yield page
            else:
                entries[page.stem] = _page_entry(page, stored, store.records[page.stem])
                bar.update(resumed=1)

    for batch in view_batches(to_read(), _views_of(pipe), pipe.batch_size):
        for page, markdown, record in _read_batch(pipe, batch):
            store.save(page.stem, markdown, record)
            tokens += record.get("generated_tokens", 0)
            if record.get("error"):
                errors[page.stem] = record["error"]
            entries[page.stem] = _page_entry(page, markdown, record)
        bar.update(read=len(batch))
    bar.close()

    report = report_from(entries, store.records)
    add_cdm(report, entries, cdm, out_dir, progress)
    report["protocol"] = info or {}
    report["run"] = {"pages_read": bar.read, "pages_resumed": bar.resumed, "errors": errors}
    report["timing"] = {"seconds": time.perf_counter() - start, "generated_tokens": tokens}
    if out_dir is not None:
        _write_json(out_dir / "metrics.json", report)
    return report
