"""Score a folder of predictions (`<image stem>.md`, the OmniDocBench layout) against an OmniDocBench JSON without
a model: the same figures, breakdowns and optional CDM / Overall as `ocr2-eval` (eval/harness.py).

    python -m eval.score_predictions GT.json PRED_DIR [--out DIR] [--cdm-odb ODB --cdm-python PYTHON]

Pages without a prediction are listed and left out, as the official evaluator leaves them out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eval.eval_summary import SUMMARY_COLUMNS, summary_markdown
from eval.harness import _page_entry, add_cdm, report_from
from eval.metrics import load_gt, load_predictions, page_stem
from eval.pages import EvalPage
from eval.report_table import render_markdown_table


def score_folder(gt_json: str | Path, pred_dir: str | Path, cdm: dict | None = None,
                 workdir: Path | None = None, progress: bool = True) -> dict:
    preds = load_predictions(pred_dir)
    entries, missing = {}, []
    for gt in load_gt(gt_json):
        stem = page_stem(gt)
        if stem not in preds:
            missing.append(stem)
            continue
        page = EvalPage(stem, lambda: None, None, gt)
        entries[stem] = _page_entry(page, preds[stem], {"hit_token_limit": False})
    report = report_from(entries, {})
    add_cdm(report, entries, cdm, workdir, progress)
    report["missing_predictions"] = missing
    report["protocol"] = {"ground_truth": str(gt_json), "predictions": str(pred_dir),
                          "metrics": report["omnidocbench"].get("protocol")}
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gt")
    p.add_argument("pred")
    p.add_argument("--out", help="write metrics.json and summary.md here")
    p.add_argument("--cdm-odb", help="official OmniDocBench checkout, for CDM and Overall")
    p.add_argument("--cdm-python", help="a Python with the official CDM requirements")
    p.add_argument("--cdm-workers", type=int, default=4)
    a = p.parse_args(argv)
    cdm = {"odb": a.cdm_odb, "python": a.cdm_python, "workers": a.cdm_workers} if a.cdm_odb else None
    out = Path(a.out) if a.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    report = score_folder(a.gt, a.pred, cdm, out)
    print(render_markdown_table([report["summary"]], SUMMARY_COLUMNS))
    if report["summary"].get("overall") is None:
        print(report["omnidocbench"]["overall_reason"])
    if out:
        (out / "metrics.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
        (out / "summary.md").write_text(summary_markdown(report), encoding="utf-8")


if __name__ == "__main__":
    main()
