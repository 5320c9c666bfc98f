#!/usr/bin/env bash
# Pre-train on a Slurm cluster: one task per GPU, mmengine's slurm launcher reads the job step.
#   [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG GPUS [train.py options]
# e.g. 32 GPUs on 4 nodes: bash tools/slurm_train.sh gpu msf configs/msf/msf_r50_200e.py 32
# The master address is the job's first node (scontrol); MASTER_PORT (default 29500) may be set.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG GPUS [train.py options]" >&2
    exit 2
fi
if ! command -v srun >/dev/null 2>&1; then
    echo "tools/slurm_train.sh: srun not found: this script submits to a Slurm cluster (run it" \
         "on a login node with Slurm). On this machine: bash tools/dist_train.sh CONFIG NPROC" >&2
    exit 127
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=$4
GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PY_ARGS=("${@:5}")
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# shellcheck disable=SC2086
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "${PYTHON:-python}" -u "$ROOT/tools/train.py" "$CONFIG" --launcher slurm "${PY_ARGS[@]}"
