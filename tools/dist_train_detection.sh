#!/usr/bin/env bash
usage() {
    cat <<'TXT'
usage: bash tools/dist_train_detection.sh CONFIG NUM_PROCS --pretrained CKPT [tools/train_detection.py options]

Multi-process detection fine-tuning: NUM_PROCS processes of tools/train_detection.py (gloo on
CPU-only machines, nccl with CUDA). The R50 configs use batch 2 per process: 8 processes give
the protocol's batch of 16. Options are those of tools/train_detection.py (--help there).
Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT (default 29500) for several nodes.
A failure prints one message; the tracebacks are kept in the folder it names.
TXT
}
source "$(dirname "$0")/dist_launch.sh"
if mmmsf_wants_help "$@" || [ $# -lt 2 ]; then usage; [ $# -lt 2 ] && ! mmmsf_wants_help "$@" && exit 2; exit 0; fi
mmmsf_dist_launch train_detection.py "$2" "$1" "${@:3}"
