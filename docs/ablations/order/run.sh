#!/bin/bash
# The order ablation's 15 runs (docs/ablations/order/README.md), seed-major, as two workers on two cores:
#   bash docs/ablations/order/run.sh 0 & bash docs/ablations/order/run.sh 1 & wait
# (worker W runs every other job of the list, starting at the W-th). EXPERIMENT (default order_finetune, the table;
# order_ablation trains from scratch) and OUT (default multirun/order) may be given as the 2nd and 3rd arguments.
cd "$(dirname "$0")/../../.."
EXPERIMENT=${2:-order_finetune}
OUT=${3:-multirun/order}
mkdir -p $OUT
export OMP_NUM_THREADS=1 DS_ACCELERATOR=cpu WANDB_MODE=offline
i=0
for seed in 0 1 2; do
  for cell in causal_flow:official bidirectional_flow:official raster:official causal_flow:shared causal_flow:2d; do
    if [ $((i % 2)) -eq $1 ]; then
      mask=${cell%%:*}; pos=${cell##*:}
      nice .venv/bin/python -m train experiment=$EXPERIMENT model.encoder.mask=$mask +positions=$pos seed=$seed \
        logger=none checkpoint.resume=never run_dir=$OUT/${mask}_${pos}_s$seed > $OUT/${mask}_${pos}_s$seed.log 2>&1
      # scored right away (page NED, reading-order score, decoder query ablations on 32 validation pages), so the
      # two workers share the evaluation too; ocr2-report over all runs then only reads the results
      nice .venv/bin/python -m eval.report $OUT/${mask}_${pos}_s$seed --evaluate --eval-pages 32 \
        --max-new-tokens 160 --out $OUT/${mask}_${pos}_s$seed/report >> $OUT/${mask}_${pos}_s$seed.log 2>&1
    fi
    i=$((i + 1))
  done
done
echo JOBS DONE
