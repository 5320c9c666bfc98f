#!/usr/bin/env bash
usage() {
    cat <<'TXT'
usage: bash tools/dist_train.sh CONFIG NUM_PROCS [tools/train.py options]

Multi-process pre-training: NUM_PROCS processes of tools/train.py (gloo on CPU-only machines,
nccl with CUDA). Options are those of tools/train.py (python tools/train.py --help), e.g.
--work-dir DIR, --resume [CKPT], --cfg-options KEY=VALUE ...
Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT (default 29500) for several nodes.
A failure prints one message; the tracebacks are kept in the folder it names.
TXT
}
source "$(dirname "$0")/dist_launch.sh"
if mmmsf_wants_help "$@" || [ $# -lt 2 ]; then usage; [ $# -lt 2 ] && ! mmmsf_wants_help "$@" && exit 2; exit 0; fi
CONFIG=$1
NPROC=$2
mmmsf_dist_launch train.py "$NPROC" "$CONFIG" "${@:3}"
