#!/bin/bash
# The order ablation's runs (docs/ablations/order/README.md): the full cross of masks x position schemes (raster has
# no flow queries, so only official and 2d there), seeds 0, 1, 2, seed-major, as two workers on two cores:
#   bash docs/ablations/order/run.sh 0 & bash docs/ablations/order/run.sh 1 & wait
# Worker W runs every other job of the list, starting at the W-th; a run already scored is skipped, so a stopped
# sweep continues where it was. EXPERIMENT (default order_finetune, the table; order_ablation trains from scratch)
# and OUT (default multirun/order) may be given as the 2nd and 3rd arguments.
cd "$(dirname "$0")/../../.."
EXPERIMENT=${2:-order_finetune}
OUT=${3:-multirun/order}
CELLS="causal_flow:official bidirectional_flow:official raster:official causal_flow:shared causal_flow:2d
       bidirectional_flow:shared bidirectional_flow:2d raster:2d"
mkdir -p $OUT
export OMP_NUM_THREADS=1 DS_ACCELERATOR=cpu WANDB_MODE=offline
i=0
for seed in 0 1 2; do
  for cell in $CELLS; do
    mask=${cell%%:*}; pos=${cell##*:}; run=$OUT/${mask}_${pos}_s$seed
    if [ $((i % 2)) -eq $1 ] && [ ! -f $run/eval/query_ablation.json ]; then
      nice .venv/bin/python -m train experiment=$EXPERIMENT model.encoder.mask=$mask +positions=$pos seed=$seed \
        logger=none checkpoint.resume=never run_dir=$run > $run.log 2>&1
      # scored right away (page NED, reading-order score, decoder query ablations on 32 validation pages), so the
      # two workers share the evaluation too; ocr2-report over all runs then only reads the results
      nice .venv/bin/python -m eval.report $run --evaluate --eval-pages 32 --max-new-tokens 160 \
        --out $run/report >> $run.log 2>&1
    fi
    i=$((i + 1))
  done
done
echo JOBS DONE
