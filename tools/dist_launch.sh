#!/usr/bin/env bash
# Shared by tools/dist_*.sh (source it): start NPROC processes of a tool with torchrun and, if
# they fail, print the first error once -- not one traceback per process and the launcher's
# report (both are kept in a folder the message names).
#   mmmsf_dist_launch TOOL NPROC [tool arguments...]
# NNODES / NODE_RANK / MASTER_ADDR / PORT for several nodes; PYTHON for another interpreter.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

mmmsf_dist_launch() {
    local tool=$1 nproc=$2
    shift 2
    if ! [[ "$nproc" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: NUM_PROCS must be a positive integer, got '$nproc'" >&2
        usage >&2
        exit 2
    fi
    local errdir
    errdir=$(mktemp -d "${TMPDIR:-/tmp}/mmmsf-dist.XXXXXX") || exit 1
    # MMMSF_LAUNCHER_PID: the processes stop when this script is gone (even after kill -9)
    MMMSF_ERROR_DIR="$errdir" MMMSF_LAUNCHER_PID=$$ PYTHONPATH="$ROOT:$PYTHONPATH" \
    "${PYTHON:-python}" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
        --nproc_per_node="$nproc" \
        "$ROOT/tools/$tool" "$@" --launcher pytorch 2>"$errdir/launcher.log"
    local rc=$?
    if [ $rc -eq 0 ]; then
        rm -rf "$errdir"
        return 0
    fi
    local first
    # the earliest error: each rank*.err is "TIME rank R: MESSAGE" on its first line
    first=$(for f in "$errdir"/rank*.err; do [ -f "$f" ] && head -n 1 "$f"; done \
            | sort -n | head -n 1)
    if [ -n "$first" ]; then
        echo "error: ${first#* }" >&2
        echo "(tracebacks and the launcher's log: $errdir)" >&2
    else  # no tool error recorded (crash, signal, launcher problem): the launcher's last lines
        tail -n 20 "$errdir/launcher.log" >&2
        echo "(the launcher's full log: $errdir/launcher.log)" >&2
    fi
    exit $rc
}

mmmsf_wants_help() {
    local a
    for a in "$@"; do
        if [ "$a" = "-h" ] || [ "$a" = "--help" ]; then return 0; fi
    done
    return 1
}
