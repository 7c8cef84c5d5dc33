#!/usr/bin/env bash
# Multi-node training with torchrun: run this same script on every node.
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 ./train/launch/multinode_torchrun.sh experiment=tiny_synth trainer=zero2
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 ./train/launch/multinode_torchrun.sh experiment=tiny_synth trainer=zero2
#
# Every node must see the same run directory (shared filesystem) so that checkpoints and resume work; give the run
# a fixed name (run_name=...) so all nodes agree on it. Extra arguments are Hydra overrides.
set -euo pipefail
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
NPROC_PER_NODE=${NPROC_PER_NODE:-$(python -c 'import torch; print(max(1, torch.cuda.device_count()))')}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
RUN_NAME=${RUN_NAME:-run_$(date +%Y%m%d_%H%M)}

exec torchrun \
  --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC_PER_NODE" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  -m train run_name="$RUN_NAME" "$@"
