#!/usr/bin/env bash
usage() {
    cat <<'TXT'
usage: bash tools/dist_linear_eval.sh CONFIG CHECKPOINT NUM_PROCS [tools/linear_eval.py options]

Multi-process linear evaluation: NUM_PROCS processes of tools/linear_eval.py (gloo on CPU-only
machines, nccl with CUDA). Options are those of tools/linear_eval.py (--help there).
Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT (default 29501) for several nodes.
A failure prints one message; the tracebacks are kept in the folder it names.
TXT
}
source "$(dirname "$0")/dist_launch.sh"
if mmmsf_wants_help "$@" || [ $# -lt 3 ]; then usage; [ $# -lt 3 ] && ! mmmsf_wants_help "$@" && exit 2; exit 0; fi
PORT=${PORT:-29501}
mmmsf_dist_launch linear_eval.py "$3" "$1" "$2" "${@:4}"
