#!/usr/bin/env bash
# Multi-process detection fine-tuning (gloo on CPU-only machines, nccl with CUDA):
#   bash tools/dist_train_detection.sh CONFIG NUM_PROCS --pretrained CKPT [train_detection.py options]
# The R50 configs use batch 2 per process: 8 processes give the protocol's batch of 16.
# NNODES / NODE_RANK / MASTER_ADDR / PORT for several nodes.
CONFIG=$1
NPROC=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$ROOT:$PYTHONPATH" \
python -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$NPROC --master_port=$PORT \
    "$ROOT/tools/train_detection.py" $CONFIG --launcher pytorch ${@:3}
