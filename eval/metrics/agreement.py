"""Agreement of our OmniDocBench scorer with the official evaluator, metric by metric (docs/omnidocbench_agreement.md).

    python -m eval.metrics.agreement GT.json PRED_DIR --odb /tmp/odb --official-python /tmp/odbenv/bin/python

runs ours in-process and the official (eval/metrics/official_driver.py, in the official environment) twice: as
released and with its index bug fixed; prints a markdown table. Our text figure is compared with the fixed run,
and our labelled `official_index_bug` figure with the released one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from .omnidocbench import evaluate_pages, load_predictions

ROWS = (  # (label, ours: path in evaluate_pages' result, official: (element, key))
    ("text edit (faithful) vs official with the index bug fixed", ("text_block", "ALL_page_avg"),
     ("text_block", "Edit_dist"), True),
    ("text edit, official index bug vs official as released", ("text_block", "ALL_page_avg_official_index_bug"),
     ("text_block", "Edit_dist"), False),
    ("display formula edit", ("display_formula", "Edit_dist_ALL_page_avg"), ("display_formula", "Edit_dist"), True),
    ("reading order edit", ("reading_order", "ALL_page_avg"), ("reading_order", "Edit_dist"), True),
    ("table TEDS", ("table", "TEDS"), ("table", "TEDS"), True),
    ("table TEDS-S", ("table", "TEDS_structure_only"), ("table", "TEDS_s"), True),
    ("table edit", ("table", "Edit_dist_ALL_page_avg"), ("table", "Edit_dist"), True),
)


def official(gt: str, pred: str, odb: str, python: str, fix: bool) -> dict:
    cmd = [python, str(Path(__file__).with_name("official_driver.py")), gt, pred, "--odb", odb]
    out = subprocess.run(cmd + (["--fix-index-bug"] if fix else []), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _value(d: dict, element: str, key: str):
    v = d[element][key]
    return v["ALL_page_avg"] if isinstance(v, dict) else v


def table(gt: str, pred: str, odb: str, python: str) -> str:
    ours = evaluate_pages(load_predictions(pred), gt)
    runs = {True: official(gt, pred, odb, python, True), False: official(gt, pred, odb, python, False)}
    lines = ["| metric | ours | official | difference |", "|---|---|---|---|"]
    for label, (el, key), (oel, okey), fixed in ROWS:
        a, b = ours[el][key], _value(runs[fixed], oel, okey)
        lines.append(f"| {label} | {a:.6f} | {b:.6f} | {a - b:+.6f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gt")
    p.add_argument("pred")
    p.add_argument("--odb", required=True, help="official OmniDocBench checkout (7bd6c2e)")
    p.add_argument("--official-python", default=sys.executable, help="Python with the official requirements")
    a = p.parse_args(argv)
    print(table(a.gt, a.pred, a.odb, a.official_python))


if __name__ == "__main__":
    main()
