#!/usr/bin/env bash
# Multi-process training: bash tools/dist_train.sh CONFIG NUM_PROCS [train.py options]
# (gloo on CPU-only machines, nccl with CUDA). NNODES/NODE_RANK/MASTER_ADDR/PORT for clusters.
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$ROOT:$PYTHONPATH" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$NPROC --master_port=$PORT \
    "$ROOT/tools/train.py" $CONFIG --launcher pytorch ${@:3}
