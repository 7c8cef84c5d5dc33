"""Agreement of our OmniDocBench scorer with the official evaluator, metric by metric (docs/omnidocbench_agreement.md).

    python -m eval.metrics.agreement GT.json PRED_DIR --odb /tmp/odb --official-python /tmp/odbenv/bin/python
        [--pages] [--official-json OUT.json]

runs ours in-process and the official (eval/metrics/official_driver.py, in the official environment) twice: as
released and with its index bug fixed; prints a markdown table. Our text figure is compared with the fixed run,
and our labelled `official_index_bug` figure with the released one. `--pages` adds every per-page figure that
differs by more than 1e-9, and every per-page-type / per-attribute figure (the official
`get_page_split`) that does; `--official-json` writes the official per-page figures
(the values tests pin: tests/test_omnidocbench_pages.py, tests/test_omnidocbench_adversarial.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from .omnidocbench import evaluate_pages, load_gt, load_predictions
from .omnidocbench_gt import page_stem
from .omnidocbench_groups import attribute_labels, group_figures

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
# per-page figure -> (official run: fixed?, element); None where the page has nothing of that kind
PAGE_FIELDS = {
    "text_edit": (True, "text_block"), "text_edit_official_index_bug": (False, "text_block"),
    "formula_edit": (True, "display_formula"), "reading_order_edit": (True, "reading_order"),
    "table_edit": (True, "table"),
}
TOLERANCE = 1e-9
# our group figure -> (official element, metric) of the official per-attribute split (show_result.get_page_split)
GROUP_FIELDS = {
    "text_edit": ("text_block", "Edit_dist"), "formula_edit": ("display_formula", "Edit_dist"),
    "reading_order_edit": ("reading_order", "Edit_dist"), "table_teds": ("table", "TEDS"),
    "table_teds_s": ("table", "TEDS_structure_only"), "table_edit": ("table", "Edit_dist"),
}


def official(gt: str, pred: str, odb: str, python: str, fix: bool) -> dict:
    cmd = [python, str(Path(__file__).with_name("official_driver.py")), gt, pred, "--odb", odb]
    out = subprocess.run(cmd + (["--fix-index-bug"] if fix else []), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the official evaluator failed on {gt} / {pred}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def _value(d: dict, element: str, key: str):
    v = d[element][key]
    return v["ALL_page_avg"] if isinstance(v, dict) else v


def official_pages(runs: dict[bool, dict]) -> dict[str, dict]:
    """Per-page figures of the official runs, keyed like ours (image stem): the PAGE_FIELDS plus the sorted
    TEDS / TEDS-S of the page's GT tables."""
    stems = {s for run in runs.values() for el in ("text_block", "display_formula", "reading_order", "table")
             for s in run[el]["pages"]} | set(runs[True]["table"]["table_pages"])
    out = {}
    for stem in sorted(stems):
        page = {f: runs[fixed][el]["pages"].get(stem) for f, (fixed, el) in PAGE_FIELDS.items()}
        tables = runs[True]["table"]["table_pages"].get(stem, [])
        page["teds"] = sorted(t[0] for t in tables)
        page["teds_s"] = sorted(t[1] for t in tables)
        out[stem] = page
    return out


def our_pages(result: dict) -> dict[str, dict]:
    """The same per-page figures from evaluate_pages' result."""
    return {stem: {**{f: p[f] for f in PAGE_FIELDS},
                   "teds": sorted(t["teds"] for t in p["tables"]), "teds_s": sorted(t["teds_s"] for t in p["tables"])}
            for stem, p in result["pages"].items()}


def _differs(a, b) -> float:
    """How far two per-page figures are apart (inf when one is missing or the table counts differ)."""
    if isinstance(a, list) or isinstance(b, list):
        if len(a) != len(b):
            return float("inf")
        return max((abs(x - y) for x, y in zip(a, b)), default=0.0)
    if a is None or b is None:
        return 0.0 if a is None and b is None else float("inf")
    return abs(a - b)


def page_differences(ours: dict[str, dict], theirs: dict[str, dict]) -> list[tuple[str, str, object, object, float]]:
    """(stem, figure, ours, official, difference) for every per-page figure apart by more than TOLERANCE;
    a page only one side scored (all its figures None / no tables on the other) counts as a difference."""
    empty = {f: None for f in PAGE_FIELDS} | {"teds": [], "teds_s": []}
    rows = []
    for stem in sorted(set(ours) | set(theirs)):
        a, b = ours.get(stem, empty), theirs.get(stem, empty)
        for f in empty:
            d = _differs(a[f], b[f])
            if d > TOLERANCE:
                rows.append((stem, f, a[f], b[f], d))
    return rows


def group_differences(ours: dict, gt: str, fixed_run: dict) -> list[tuple[str, str, object, object]]:
    """(group, figure, ours, official) for every per-page-type / per-attribute figure apart by more than
    TOLERANCE (a group only one side has counts too)."""
    labels = {page_stem(p): attribute_labels((p.get("page_info") or {}).get("page_attribute")) for p in load_gt(gt)}
    mine = group_figures(ours["pages"], labels)
    rows = []
    for figure, (el, metric) in GROUP_FIELDS.items():
        theirs = {k: v for k, v in (fixed_run[el].get("page_split") or {}).get(metric, {}).items() if k != "ALL"}
        for group in sorted(set(theirs) | {g for g, r in mine.items() if r.get(figure) is not None}):
            a, b = mine.get(group, {}).get(figure), theirs.get(group)
            if a is None or b is None or abs(a - b) > TOLERANCE:
                rows.append((group, figure, a, b))
    return rows


def compare(gt: str, pred: str, odb: str, python: str) -> tuple[str, list, dict]:
    """(markdown table of the aggregates, per-page and per-group differences, official per-page figures)."""
    ours = evaluate_pages(load_predictions(pred), gt)
    runs = {True: official(gt, pred, odb, python, True), False: official(gt, pred, odb, python, False)}
    lines = ["| metric | ours | official | difference |", "|---|---|---|---|"]
    for label, (el, key), (oel, okey), fixed in ROWS:
        a, b = ours[el][key], _value(runs[fixed], oel, okey)
        lines.append(f"| {label} | {a:.6f} | {b:.6f} | {a - b:+.6f} |")
    theirs = official_pages(runs)
    mine = sorted(tuple(p) for r in ours["pages"].values() for p in r["formula_latex"])
    official_inputs = sorted(tuple(p) for p in runs[True]["display_formula"].get("cdm_inputs", []))
    same = sum(1 for a, b in zip(mine, official_inputs) if a == b)
    lines.append(f"| CDM inputs (GT, prediction LaTeX pairs) identical | {len(mine)} | {len(official_inputs)} | "
                 f"{same} identical |")
    diffs = page_differences(our_pages(ours), theirs) + [
        (f"group {g}", f, a, b, float("inf") if a is None or b is None else abs(a - b))
        for g, f, a, b in group_differences(ours, gt, runs[True])]
    return "\n".join(lines), diffs, theirs


def table(gt: str, pred: str, odb: str, python: str) -> str:
    return compare(gt, pred, odb, python)[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gt")
    p.add_argument("pred")
    p.add_argument("--odb", required=True, help="official OmniDocBench checkout (7bd6c2e)")
    p.add_argument("--official-python", default=sys.executable, help="Python with the official requirements")
    p.add_argument("--pages", action="store_true", help="also list the per-page figures that differ")
    p.add_argument("--official-json", help="write the official per-page figures to this JSON file")
    a = p.parse_args(argv)
    text, diffs, theirs = compare(a.gt, a.pred, a.odb, a.official_python)
    print(text)
    if a.pages:
        print(f"\nper-page and per-group (page type, attribute) figures apart by more than {TOLERANCE:g}: "
              f"{len(diffs)}")
        for stem, f, x, y, d in diffs:
            print(f"  {stem}  {f}: ours {x}  official {y}  (|diff| {d:.3g})")
    if a.official_json:
        Path(a.official_json).write_text(json.dumps(theirs, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nofficial per-page figures -> {a.official_json}")


if __name__ == "__main__":
    main()
