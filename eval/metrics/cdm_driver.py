"""Score formula pairs with the official CDM (a checkout of opendatalab/OmniDocBench @ 7bd6c2e, `metrics/cdm`,
run in its own Python environment with XeLaTeX, ImageMagick 7 and Node.js on the PATH). Not part of our scorer:
eval/metrics/cdm.py runs it. Usage:
    <official python> cdm_driver.py PAIRS.json OUT.json --odb OFFICIAL_CHECKOUT --workdir DIR [--workers N]
PAIRS.json: [[gt_latex, pred_latex], ...]; OUT.json: one F1 per pair, in order (0.0 where rendering fails, as
the benchmark counts a failed sample), written as the pairs are done. Input cleaning as the benchmark does before
CDM: a fenced ```latex block of the prediction is unwrapped, then `$` delimiters and spaces are stripped."""
import argparse, json, os, sys, types
from concurrent.futures import ProcessPoolExecutor

ap = argparse.ArgumentParser()
ap.add_argument("pairs"); ap.add_argument("out"); ap.add_argument("--odb", required=True)
ap.add_argument("--workdir", required=True); ap.add_argument("--workers", type=int, default=1)
args = ap.parse_args()
sys.path.insert(0, args.odb)
for name in ("mmeval", "evaluate"):  # imported by the metrics package, not used by CDM
    if name not in sys.modules:
        m = types.ModuleType(name); m.COCODetection = object; sys.modules[name] = m


def clean(latex, pred):
    if pred:
        latex = latex.split("```latex")[-1].split("```")[0]
    return latex.strip().strip("$").strip()


def score(job):
    k, gt, pred = job
    from metrics.cdm_metric import CDM
    try:
        return float(CDM(output_root=os.path.join(args.workdir, str(k))).evaluate(
            clean(gt, False), clean(pred, True), str(k))["F1_score"])
    except Exception as e:  # noqa: BLE001 - a formula that does not render scores 0, as in the benchmark
        sys.stderr.write(f"pair {k}: {type(e).__name__}: {e}\n")
        return 0.0


if __name__ == "__main__":
    pairs = json.load(open(args.pairs, encoding="utf-8"))
    jobs = [(k, gt, pred) for k, (gt, pred) in enumerate(pairs)]
    with ProcessPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        scores = list(pool.map(score, jobs))
    json.dump(scores, open(args.out, "w"))
