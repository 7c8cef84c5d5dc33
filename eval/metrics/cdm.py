"""The CDM formula score and the OmniDocBench Overall, when the tools are there (eval/metrics/cdm_tools.py).

`formula_cdm(pairs, odb, python)` scores (GT, prediction) LaTeX pairs - `formula_latex` of each page figure -
with the official CDM implementation (eval/metrics/cdm_driver.py in the official environment; opendatalab/
OmniDocBench @ 7bd6c2e `metrics/cdm`, Apache-2.0) and returns the benchmark's figure: the mean F1 over all
display-formula pairs. A pair that cannot be rendered scores 0, as in the benchmark. Chunks of pairs are scored
in turn with progress (rate, ETA) on stderr; the scores of finished chunks are kept in `workdir/scores.jsonl`,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import fmean

from .cdm_tools import cdm_status

CHUNK = 50


def _chunk_scores(chunk: list[tuple[str, str]], odb: str, python: str, workdir: Path, workers: int) -> list[float]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        pairs, out = Path(tmp) / "pairs.json", Path(tmp) / "scores.json"
        pairs.write_text(json.dumps(chunk, ensure_ascii=False), encoding="utf-8")
        cmd = [python, str(Path(__file__).with_name("cdm_driver.py")), str(pairs), str(out), "--odb", odb,
               "--workdir", str(Path(tmp) / "render"), "--workers", str(workers)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"the official CDM failed ({' '.join(cmd[:2])}):\n{proc.stderr[-3000:]}")
        return json.loads(out.read_text())


def _done_chunks(path: Path) -> list[dict]:
    """The chunks an earlier run scored; a line torn by a kill mid-write is scored again. The rule of
    ocr2.json_lines.read_json_lines (split on "\n" only), restated: eval/metrics imports neither ocr2 nor torch."""
    if not path.is_file():
        return []
    done = []
    for line in filter(None, path.read_text(encoding="utf-8").split("\n")):
        try:
            done.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return done


def formula_cdm(pairs: list[tuple[str, str]], odb: str, python: str, workdir: str | Path, workers: int = 4,
                progress: bool = True) -> dict:
    """{"CDM": mean F1 (None without pairs), "scores": per pair, "pairs": n}. Raises RuntimeError naming what is
    missing when the tools are not all there."""
    status = cdm_status(odb, python)
    if not status["available"]:
        raise RuntimeError(status["reason"])
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    done_path = workdir / "scores.jsonl"
    done = _done_chunks(done_path)
    done = [d for d in done if d.get("pairs") == [list(p) for p in pairs[d["start"]:d["start"] + len(d["scores"])]]]
    scores: dict[int, float] = {d["start"] + i: s for d in done for i, s in enumerate(d["scores"])}
    start = time.perf_counter()
    todo = [k for k in range(0, len(pairs), CHUNK) if k not in scores]
    for n, k in enumerate(todo, 1):
        chunk = [list(p) for p in pairs[k:k + CHUNK]]
        got = _chunk_scores(chunk, odb, python, workdir, workers)
        with open(done_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"start": k, "scores": got, "pairs": chunk}, ensure_ascii=False) + "\n")
        scores.update({k + i: s for i, s in enumerate(got)})
        if progress:
            rate = n / (time.perf_counter() - start)
            print(f"CDM: {len(scores)}/{len(pairs)} formulas, ETA {(len(todo) - n) / rate:.0f} s", file=sys.stderr,
                  flush=True)
    ordered = [scores[k] for k in range(len(pairs))]
    return {"CDM": fmean(ordered) if ordered else None, "scores": ordered, "pairs": len(pairs)}
