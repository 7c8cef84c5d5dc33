"""Run the official OmniDocBench end-to-end evaluator (a checkout of opendatalab/OmniDocBench @ 7bd6c2e, with its
own Python environment) on a GT JSON and a prediction folder, and print its figures as JSON. Not part of our
scorer: eval/metrics/agreement.py runs it with the official environment to measure agreement.
Usage: <official python> official_driver.py GT.json PRED_DIR --odb OFFICIAL_CHECKOUT [--fix-index-bug]
`--fix-index-bug` makes the official item lists filtered like its line lists (the bug we do not copy)."""
import argparse, json, os, sys, types, tempfile
from collections import defaultdict

ap = argparse.ArgumentParser()
ap.add_argument("gt"); ap.add_argument("pred"); ap.add_argument("--fix-index-bug", action="store_true")
ap.add_argument("--cdm", action="store_true", help="also the official CDM (needs its tools; eval/metrics/cdm_tools.py)")
ap.add_argument("--odb", default=os.environ.get("ODB", "/tmp/odb"))
args = ap.parse_args()
gt_path, pred_path = os.path.abspath(args.gt), os.path.abspath(args.pred)
for name in ("mmeval", "evaluate") + (() if args.cdm else ("skimage", "skimage.measure")):  # not run here
    m = types.ModuleType(name); m.COCODetection = m.ransac = object; sys.modules[name] = m
if not args.cdm:
    cdm = types.ModuleType("metrics.cdm_metric"); cdm.CDM = object; sys.modules["metrics.cdm_metric"] = cdm
sys.path.insert(0, args.odb)
os.chdir(tempfile.mkdtemp()); os.makedirs("result")
import io, contextlib
with contextlib.redirect_stdout(io.StringIO()):
    import utils.match as um, utils.match_quick as mq
    if args.fix_index_bug:
        orig = um.get_gt_pred_lines
        def fixed(gt_mix, pred_mix, line_type):
            g, ng, gc, p, np_, gi, pi = orig(gt_mix, pred_mix, line_type)
            if line_type in ("html_table", "latex_table"):
                return g, ng, gc, p, np_, gi, pi
            # same filter as the official, applied to the items too
            a, _, _, b, _, _, _ = orig(gt_mix, [], line_type)
            keep_g = [it for it in gt_mix if orig([it], [], line_type)[0]]
            keep_p = [it for it in pred_mix if orig([], [it], line_type)[3]]
            return g, ng, gc, p, np_, keep_g, keep_p
        um.get_gt_pred_lines = fixed; mq.get_gt_pred_lines = fixed
    from dataset.end2end_dataset import End2EndDataset
    from metrics.cal_metric import call_CDM, call_Edit_dist, call_TEDS
    from metrics.show_result import get_page_split
    cfg = {"dataset": {"ground_truth": {"data_path": gt_path}, "prediction": {"data_path": pred_path},
                       "match_method": "quick_match"}}
    ds = End2EndDataset(cfg)
out = {}
page_info = {os.path.basename(p["page_info"]["image_path"])[:-4]: p["page_info"].get("page_attribute") or {}
             for p in json.load(open(gt_path, encoding="utf-8"))}
def page_of(s):
    i = s["img_id"]; return i if i.endswith((".jpg", ".png")) else "_".join(i.split("_")[:-1])
with contextlib.redirect_stdout(io.StringIO()):
    for el in ("text_block", "display_formula", "reading_order", "table"):
        samples = ds.samples[el]
        _, res = call_Edit_dist(samples).evaluate([], f"x_{el}")
        pages = defaultdict(lambda: [0, 0])
        for s in (samples.samples if hasattr(samples, "samples") else samples):
            if "Edit_num" in s:
                pages[page_of(s)][0] += s["Edit_num"]; pages[page_of(s)][1] += s["upper_len"]
        out[el] = {"Edit_dist": res["Edit_dist"],
                   "pages": {k[:-4]: e / u for k, (e, u) in pages.items() if u}}
        if el != "table":  # the leaderboard's per-attribute figures (the table's after TEDS, below)
            out[el]["page_split"] = get_page_split(samples.samples if hasattr(samples, "samples") else samples,
                                                   page_info)
    formulas = ds.samples["display_formula"]
    out["display_formula"]["cdm_inputs"] = [[f["gt"], f["pred"]] for f in
                                            (formulas.samples if hasattr(formulas, "samples") else formulas)]
    if args.cdm:
        out["display_formula"]["CDM"] = call_CDM(formulas).evaluate([], "x_display_formula", max_workers=4)[1][
            "CDM"].get("all")
    _, res = call_TEDS(ds.samples["table"]).evaluate([], "x_table")
    tabs = ds.samples["table"].samples
    per = defaultdict(list)
    for s in tabs:
        per[s["img_id"][:-4]].append((s["metric"]["TEDS"], s["metric"]["TEDS_structure_only"]))
    out["table"].update(TEDS=res["TEDS"]["all"], TEDS_s=res["TEDS_structure_only"]["all"],
                        table_pages={k: v for k, v in per.items()}, page_split=get_page_split(tabs, page_info))
def clean(o):
    if isinstance(o, dict): return {k: clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)): return [clean(v) for v in o]
    try: return float(o) if not isinstance(o, str) else o
    except Exception: return str(o)
print(json.dumps(clean(out), indent=1, ensure_ascii=False))
