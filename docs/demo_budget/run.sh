#!/usr/bin/env bash
# How far the toy reader gets on unseen renderings with more budget (issue 20: "measure how far it gets and with
# what budget"). Each line is the README's main job (python -m eval.demo) with one budget changed; the pages are
# the demo's own (data/demo_varied, rendered by `make demo`), so the splits and held-out conditions are the same.
# Runs go side by side, one thread each (the figures are accuracies and NEDs, not times).
# Usage: bash docs/demo_budget/run.sh [RUNS_DIR]   (default runs/demo_budget; a finished run is not redone)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/demo_budget}
PY=${PY:-.venv/bin/python}
run() {  # name, then eval.demo arguments
    local name=$1; shift
    [ -f "$out/$name/demo_metrics.md" ] && { echo "$name: done, kept"; return; }
    mkdir -p "$out/$name"
    OMP_NUM_THREADS=1 nice "$PY" -m eval.demo --run-dir "$out/$name" "$@" > "$out/$name.log" 2>&1
}
# 3x the tokenizer's pretraining steps (6,000 instead of 2,000), the same micro model
run tokenizer_6000 --tokenizer-steps 6000 &
# a vision tokenizer twice as wide (SAM width 64 instead of 32: 0.47 M instead of 0.24 M vision parameters)
run tokenizer_wide --tokenizer-steps 2000 model.vision.width=64 &
wait
for name in tokenizer_6000 tokenizer_wide; do echo "== $name"; tail -n 20 "$out/$name/demo_metrics.md"; done
