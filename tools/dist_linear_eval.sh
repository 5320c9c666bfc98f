#!/usr/bin/env bash
# Multi-process linear evaluation:
#   bash tools/dist_linear_eval.sh CONFIG CHECKPOINT NUM_PROCS [linear_eval.py options]
# (gloo on CPU-only machines, nccl with CUDA). NNODES/NODE_RANK/MASTER_ADDR/PORT for clusters.
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29501}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$ROOT:$PYTHONPATH" \
python -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$NPROC --master_port=$PORT \
    "$ROOT/tools/linear_eval.py" $CONFIG $CHECKPOINT --launcher pytorch ${@:4}
