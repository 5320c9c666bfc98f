#!/usr/bin/env bash
# GPU self-check: build the GPU environment, prove the CUDA path, measure what only a GPU gives.
#
#   bash tools/gpu_selfcheck.sh              # one GPU, <= 8 minutes (--budget), no CUDA toolkit needed
#   bash tools/gpu_selfcheck.sh --dry-run    # on any machine: every step exists, parses, is wired
#
# Writes OUT/summary.md and OUT/summary.json (OUT: --out, default work_dirs/gpu_selfcheck) with
# each step's status and time, the environment, the `pytest -m cuda` results and the benchmark
# tables; logs in OUT/logs/, benchmark JSON in OUT/bench/. Steps, in this order:
#   env_venv env_install env_mmcv env_mmmsf    the README's GPU environment (section "GPU"),
#                                             mmcv without compiled ops first (a minute at most)
#   env_report                                versions, GPU, driver, CUDA runtimes
#   cuda_tests                                python -m pytest -m cuda tests/test_cuda
#   bench_*                                   benchmarks/*.py --device cuda, trimmed to fit
#   mmcv_ops mmcv_ops_check                   mmcv's CUDA ops (nvcc from the package index when
#                                             the machine has none), with what time is left
# Each step gets at most its own limit and what is left of the budget; a step that fails is
# recorded and the next one runs. Exit status: 0 only if every step and every cuda test passed.
#
# Options:
#   --env venv      (default) a new venv ($MMMSF_VENV, default OUT/venv) from --python
#                   (default python3.11, or $MMMSF_PYTHON) with the pinned stack of requirements/
#   --env system    reuse an interpreter that already has CUDA torch (--python, default python3):
#                   a venv that sees its packages and adds only what is missing (pins not enforced
#                   on what is already there; the summary lists the versions used)
#   --wheelhouse D  install from the wheels/sdists in D only (pip --no-index), for machines
#                   without a package index
#   --budget S      wall-time budget in seconds (default 480)
#   --no-mmcv-ops   skip the CUDA-ops build
#   --out D         output folder;  --export D  also copy summary.md, summary.json, logs.tar.gz to D
set -uo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="${MMMSF_ROOT:-$(cd "$(dirname "$SELF")/.." && pwd)}"
MMCV_VERSION="2.1.0"
TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"

DRY=0 ENV_MODE=venv BASE_PY="" WHEELHOUSE="" BUDGET=480 MMCV_OPS=1 OUT="" EXPORT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --env) ENV_MODE="${2:?--env needs venv or system}"; shift ;;
        --python) BASE_PY="${2:?--python needs an interpreter}"; shift ;;
        --wheelhouse) WHEELHOUSE="$(cd "${2:?--wheelhouse needs a folder}" 2>/dev/null && pwd)" || {
            echo "gpu_selfcheck: --wheelhouse $2 is not a folder" >&2; exit 2; }; shift ;;
        --budget) BUDGET="${2:?--budget needs seconds}"; shift ;;
        --no-mmcv-ops) MMCV_OPS=0 ;;
        --out) OUT="${2:?--out needs a folder}"; shift ;;
        --export) EXPORT="${2:?--export needs a folder}"; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$SELF" | sed '$d'; exit 0 ;;
        *) echo "gpu_selfcheck: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$ENV_MODE" in venv|system) ;; *)
    echo "gpu_selfcheck: --env $ENV_MODE: use venv or system" >&2; exit 2 ;; esac
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "gpu_selfcheck: --budget $BUDGET: seconds" >&2; exit 2; }

OUT="${OUT:-$ROOT/work_dirs/gpu_selfcheck}"
if [ "$DRY" = 1 ]; then  # the dry run writes nothing under OUT that could pass for results
    WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
else
    mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)" && WORK="$OUT"
    rm -rf "$OUT/logs" "$OUT/bench" "$OUT/steps.jsonl" "$OUT/summary.md" "$OUT/summary.json" \
        "$OUT/env.json" "$OUT/cuda_tests.xml"
fi
LOGS="$WORK/logs" BENCH="$WORK/bench" PLAN="$WORK/plan.tsv"
mkdir -p "$LOGS" "$BENCH"
VENV="${MMMSF_VENV:-$OUT/venv}"
PY="$VENV/bin/python"
START=$(date +%s)
DEADLINE=$((START + BUDGET))
RESERVE=20  # seconds kept for the summary
BROKEN=0

log() { echo "[gpu_selfcheck] $*" >&2; }
vpip() {  # pip of the venv; for a venv made without pip (the interpreter has no ensurepip),
    # its interpreter's pip aimed at the venv (pip >= 22.3)
    if "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
        "$VENV/bin/python" -m pip --disable-pip-version-check "$@"
    else
        "$(cat "$VENV/.base_python")" -m pip --disable-pip-version-check --python "$VENV/bin/python" "$@"
    fi
}
pip_install() {  # pip install into the venv, from the index or only from the wheelhouse
    local src=()
    [ -n "$WHEELHOUSE" ] && src=(--no-index --find-links "$WHEELHOUSE")
    vpip install -q "${src[@]}" "$@"
}

# ------------------------------------------------------------------------------- env steps
# Each takes CHECK_ONLY=1 (dry run): check what it needs, install nothing.
find_python() {
    local want="$1" py
    if [ -n "$BASE_PY" ]; then py="$BASE_PY"
    elif [ "$ENV_MODE" = venv ]; then py="${MMMSF_PYTHON:-python3.11}"
    else py=python3; fi
    command -v "$py" >/dev/null 2>&1 || { log "no interpreter '$py' (set --python)"; return 1; }
    if [ "$want" = 3.11 ] && ! "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        log "--env venv needs Python 3.11 (the pinned stack), '$py' is $("$py" -V 2>&1)"; return 1
    fi
    echo "$py"
}

env_venv() {
    local py
    py="$(find_python "$([ "$ENV_MODE" = venv ] && echo 3.11 || echo any)")" || return 1
    local nopip=()
    "$py" -c 'import venv' || { log "$py has no venv module"; return 1; }
    if [ "$ENV_MODE" = system ]; then
        [ "${CHECK_ONLY:-0}" = 1 ] && { "$py" -c 'import torch; assert torch.version.cuda' ||
            { log "--env system: $py has no CUDA torch"; return 1; }; }
        "$py" -c 'import ensurepip' 2>/dev/null || nopip=(--without-pip)
        [ -z "${nopip[*]}" ] || "$py" -m pip --version >/dev/null ||
            { log "$py has neither ensurepip nor pip"; return 1; }
    else
        "$py" -c 'import ensurepip' || { log "$py lacks ensurepip (python3.11-venv)"; return 1; }
    fi
    [ "${CHECK_ONLY:-0}" = 1 ] && return 0
    [ -x "$PY" ] || "$py" -m venv "${nopip[@]}" "$VENV" || return 1
    command -v "$py" >"$VENV/.base_python"
    if [ "$ENV_MODE" = system ]; then
        # the interpreter's own packages (torch ...) after the venv's: a .pth file, which also
        # works where that interpreter is itself a venv (--system-site-packages would not)
        "$py" -c 'import site, sys, sysconfig
paths = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")] + site.getsitepackages()
print("\n".join(dict.fromkeys(p for p in paths if p)))' \
            >"$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_base_interpreter.pth"
        "$PY" -c 'import torch; assert torch.version.cuda, "torch without CUDA"
print("torch", torch.__version__, "CUDA", torch.version.cuda)' ||
            { log "--env system: the venv of $py sees no CUDA torch"; return 1; }
    fi
    "$PY" -V
}

requirement_files() {
    echo "$ROOT/requirements/runtime.txt $ROOT/requirements/faiss-gpu.txt $ROOT/requirements/tests.txt"
}

env_install() {
    local f
    for f in $(requirement_files); do [ -f "$f" ] || { log "missing $f"; return 1; }; done
    [ "${CHECK_ONLY:-0}" = 1 ] && return 0
    if [ "$ENV_MODE" = venv ]; then
        # the default index's Linux torch wheels are CUDA builds (torch 2.14.1: CUDA 13.0,
        # runtime libraries as nvidia-* wheels); faiss-gpu brings its own CUDA 12 runtime
        pip_install $TORCH_SPEC $(for f in $(requirement_files); do echo -r "$f"; done)
    else  # keep the interpreter's torch; add what is missing, without touching torch
        local missing
        missing="$(cd "$ROOT" && "$PY" tools/gpu_selfcheck.py missing-requirements)" || return 1
        log "missing next to the interpreter's torch: ${missing:-nothing}"
        [ -z "$missing" ] || pip_install $missing
    fi
}

build_setuptools() {  # on: mmcv's setup.py wants pkg_resources of setuptools < 70 (as
    # tools/setup_env.sh builds it); off: back to the version the environment had
    if [ "$1" = on ]; then
        "$PY" -c 'import setuptools; print(setuptools.__version__)' >"$WORK/setuptools.version"
        pip_install "setuptools<70" wheel
    elif [ -s "$WORK/setuptools.version" ]; then
        pip_install "setuptools==$(cat "$WORK/setuptools.version")"
    fi
}

mmcv_source() {  # unpack mmcv's sdist (patched for torch's C++20 headers) into $1
    local dst="$1" src=()
    rm -rf "$dst" && mkdir -p "$dst"
    [ -n "$WHEELHOUSE" ] && src=(--no-index --find-links "$WHEELHOUSE")
    vpip download -q "${src[@]}" --no-deps --no-binary :all: \
        --no-build-isolation "mmcv==$MMCV_VERSION" -d "$dst" || return 1
    tar xzf "$dst/mmcv-$MMCV_VERSION.tar.gz" -C "$dst" &&
        sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' \
            "$dst/mmcv-$MMCV_VERSION/setup.py"
}

env_mmcv() {  # mmcv without compiled ops: pure Python, seconds (mmmsf's training needs no ops)
    command -v tar >/dev/null && command -v sed >/dev/null || { log "needs tar and sed"; return 1; }
    [ "${CHECK_ONLY:-0}" = 1 ] && return 0
    build_setuptools on || return 1
    mmcv_source "$WORK/mmcv-src" &&
        (cd "$WORK/mmcv-src/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=0 \
            vpip wheel -q --no-deps --no-build-isolation . -w "$WORK/mmcv-lite")
    local rc=$?
    build_setuptools off || return 1
    [ $rc = 0 ] || return $rc
    # (mmdet, from requirements/runtime.txt, does not require mmcv as a package)
    pip_install --no-deps --force-reinstall "$WORK"/mmcv-lite/mmcv_lite-*.whl
}

env_mmmsf() {
    [ -f "$ROOT/setup.py" ] || { log "missing $ROOT/setup.py"; return 1; }
    [ "${CHECK_ONLY:-0}" = 1 ] && return 0
    pip_install --no-deps --no-build-isolation -e "$ROOT" &&
        "$PY" -c 'import mmmsf, mmcv, mmengine, faiss, torch; print("mmmsf from", mmmsf.__file__)'
}

cuda_home_for_build() {  # print a CUDA_HOME with nvcc matching torch's CUDA; install if needed
    local cuda major site home
    cuda="$("$PY" -c 'import torch; print(torch.version.cuda or "")')" || return 1
    [ -n "$cuda" ] || { log "torch has no CUDA"; return 1; }
    major="${cuda%%.*}"
    local nvcc
    nvcc="$(readlink -f "$(command -v nvcc 2>/dev/null || echo /x/x/x)")"
    for home in "${CUDA_HOME:-}" "$(dirname "$(dirname "$nvcc")")"; do
        if [ -x "$home/bin/nvcc" ] && [ -f "$home/include/cuda_runtime.h" ] &&
            "$home/bin/nvcc" --version | grep -q "release $cuda,"; then
            echo "$home"; return 0
        fi
    done
    # no matching toolkit: nvcc, its front end (nvvm), headers and cudart from the package index,
    # all into the venv's own tree (nvcc finds headers and libraries next to itself; without
    # --ignore-installed, --env system would leave cudart in the interpreter's tree)
    pip_install --ignore-installed "cuda-toolkit[nvcc,cccl,crt,cudart]==$cuda.*" >&2 || return 1
    site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    home="$site/nvidia/cu$major"
    [ -x "$home/bin/nvcc" ] || { log "no nvcc in $home after the install"; return 1; }
    # the wheels ship libcudart.so.N only; the extension links with -lcudart
    [ -e "$home/lib/libcudart.so" ] || ln -s "$(cd "$home/lib" && ls libcudart.so.* | head -n1)" \
        "$home/lib/libcudart.so"
    echo "$home"
}

mmcv_ops() {  # mmcv with compiled CUDA ops (needed by mmdet's detectors, not by pre-training)
    command -v c++ >/dev/null || { log "no C++ compiler (c++) for mmcv's ops"; return 1; }
    [ "${CHECK_ONLY:-0}" = 1 ] && return 0
    local home arch inc
    home="$(cuda_home_for_build)" || return 1
    arch="$("$PY" -c 'import torch; print(".".join(map(str, torch.cuda.get_device_capability())))')"
    # the headers of torch's CUDA libraries (cuBLAS, cuSPARSE, ...) wherever their wheels are
    inc="$("$PY" -c 'import os, sys, torch
sub = os.path.join("nvidia", "cu" + torch.version.cuda.split(".")[0], "include")
print(":".join(dict.fromkeys(p for p in (os.path.join(d, sub) for d in sys.path) if os.path.isdir(p))))')"
    log "building mmcv $MMCV_VERSION ops with $home/bin/nvcc for sm $arch, $(nproc) jobs"
    build_setuptools on || return 1
    mmcv_source "$WORK/mmcv-ops-src" &&
        (cd "$WORK/mmcv-ops-src/mmcv-$MMCV_VERSION" &&
            CUDA_HOME="$home" PATH="$home/bin:$PATH" CPATH="$inc${CPATH:+:$CPATH}" \
            TORCH_CUDA_ARCH_LIST="$arch" FORCE_CUDA=1 \
            MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" \
            vpip wheel --no-deps --no-build-isolation . -w "$WORK/mmcv-ops")
    local rc=$?
    build_setuptools off || return 1
    [ $rc = 0 ] || return $rc
    vpip uninstall -q -y mmcv-lite && pip_install --no-deps "$WORK"/mmcv-ops/mmcv-*.whl
}

# ------------------------------------------------------------------------------- step runner
record() {  # record NAME STATUS SECONDS RC NOTE   (one JSON line per step)
    local note
    note="$(printf '%s' "$5" | tr -cd '[:print:]' | tr '"\\' "'/")"
    printf '{"name": "%s", "status": "%s", "seconds": %s, "rc": %s, "note": "%s", "log": "logs/%s.log"}\n' \
        "$1" "$2" "$3" "$4" "$note" "$1" >>"$WORK/steps.jsonl"
}

run_step() {  # run_step NAME MAX_SECONDS (fn FUNCTION | python ARGS...)
    local name="$1" max="$2" kind="$3"; shift 3
    if [ "$DRY" = 1 ]; then  # one plan line per step; the validator reports them in order
        if [ "$kind" = fn ]; then  # shell steps are checked here, with CHECK_ONLY=1
            if ! declare -F "$1" >/dev/null; then
                set -- "no function $1"; kind=fn-broken
            elif (CHECK_ONLY=1 "$1") >"$LOGS/$name.log" 2>&1; then
                kind=fn-ok
            else
                set -- "$(tail -n 3 "$LOGS/$name.log" | tr -cd '[:print:]')"; kind=fn-broken
            fi
        fi
        printf '%s\t%s' "$name" "$kind" >>"$PLAN"; printf '\t%s' "$@" >>"$PLAN"; echo >>"$PLAN"
        return 0
    fi
    local left=$((DEADLINE - $(date +%s) - RESERVE))
    if [ "$left" -lt 10 ]; then
        log "$name: skipped, the budget is used up"
        record "$name" skipped 0 0 "budget of ${BUDGET} s used up"; return 1
    fi
    local t=$((max < left ? max : left)) t0 t1 rc status note=""
    log "$name (at most $t s) ..."
    t0=$(date +%s.%N)
    if [ "$kind" = fn ]; then
        timeout -k 10 "$t" bash -c "set -o pipefail; $1" >"$LOGS/$name.log" 2>&1
    else
        (cd "$ROOT" && PYTHONUNBUFFERED=1 timeout -k 10 "$t" "$PY" "$@") >"$LOGS/$name.log" 2>&1
    fi
    rc=$?
    t1=$(date +%s.%N)
    case $rc in
        0) status=ok ;;
        124|137) status=timeout; note="cut at $t s" ;;
        *) status=failed; note="$(tail -n 1 "$LOGS/$name.log" | cut -c1-200)" ;;
    esac
    record "$name" "$status" "$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")" "$rc" "$note"
    log "$name: $status ($(awk "BEGIN{printf \"%.0f\", $t1 - $t0}") s)"
    return $rc
}

# the runner calls the env steps in a child shell under timeout
export ROOT VENV PY WHEELHOUSE ENV_MODE BASE_PY WORK MMCV_VERSION TORCH_SPEC
export -f log vpip pip_install find_python env_venv requirement_files env_install build_setuptools \
    mmcv_source env_mmcv env_mmmsf cuda_home_for_build mmcv_ops

if [ "$DRY" = 1 ]; then
    bash -n "$SELF" || { echo "[dry-run] shell syntax BROKEN"; exit 1; }
    for c in timeout tar sed awk date; do
        command -v "$c" >/dev/null || { echo "[dry-run] missing command $c"; BROKEN=1; }
    done
    PY="${PYTHON:-$(command -v python3)}"  # checks the Python steps with this interpreter
fi

# ------------------------------------------------------------------------------- the steps
run_step env_venv 120 fn env_venv
run_step env_install 300 fn env_install
run_step env_mmcv 150 fn env_mmcv
run_step env_mmmsf 60 fn env_mmmsf
run_step env_report 60 python tools/gpu_selfcheck.py env-report "$WORK/env.json"
run_step cuda_tests 150 python -m pytest -m cuda tests/test_cuda -q -rA -p no:cacheprovider \
    --junitxml "$WORK/cuda_tests.xml"
run_step bench_step_overhead 120 python benchmarks/step_overhead.py --device cuda \
    --bank-sizes 128000 1024000 --searches torch faiss --batch 128 --repeats 7 --steps 2 \
    --out "$BENCH/step_overhead.json"
run_step bench_step_throughput 90 python benchmarks/step_throughput.py --device cuda \
    --batch 128 --repeats 5 --steps 3 --out "$BENCH/step_throughput.json"
run_step bench_search_kernel 90 python benchmarks/search_kernel.py --device cuda \
    --shapes 256x128000x512 256x1024000x512 --repeats 5 --chunk-sizes 32768 262144 \
    --out "$BENCH/search_kernel.json"
run_step bench_memory 60 python benchmarks/memory.py --device cuda \
    --bank-sizes 128000 1024000 --dataset-sizes 20000 --out "$BENCH/memory.json"
run_step bench_data_loading 60 python benchmarks/data_loading.py --device cuda \
    --images 256 --workers 4 8 --loader-batch 32 --out "$BENCH/data_loading.json"
if [ "$MMCV_OPS" = 1 ]; then
    run_step mmcv_ops 100000 fn mmcv_ops &&
        run_step mmcv_ops_check 60 python tools/gpu_selfcheck.py mmcv-ops-check
fi

if [ "$DRY" = 1 ]; then
    # the Python steps, each with its own parser (benchmarks), collection (pytest) or compiler
    (cd "$ROOT" && "$PY" tools/gpu_selfcheck.py validate "$PLAN") || BROKEN=1
    # and the summary of a run in which nothing ran yet
    (cd "$ROOT" && "$PY" tools/gpu_selfcheck.py summarize "$WORK" --budget "$BUDGET" >/dev/null)
    if [ ! -s "$WORK/summary.md" ]; then echo "[dry-run] summarize BROKEN"; BROKEN=1; fi
    if [ "$BROKEN" = 1 ]; then echo "[dry-run] FAILED: a step above is broken"; exit 1; fi
    echo "[dry-run] all $(wc -l <"$PLAN") steps ok"
    exit 0
fi

# summary (with whichever Python exists: the venv's, or the one that started us)
SUMPY="$PY"; [ -x "$SUMPY" ] || SUMPY="$(command -v python3)"
(cd "$ROOT" && "$SUMPY" tools/gpu_selfcheck.py summarize "$WORK" --budget "$BUDGET") \
    >"$LOGS/summary.log" 2>&1
rc=$?
tail -n +1 "$WORK/summary.md" 2>/dev/null || cat "$LOGS/summary.log"
if [ -n "$EXPORT" ]; then
    mkdir -p "$EXPORT" && cp "$WORK/summary.md" "$WORK/summary.json" "$EXPORT/" 2>/dev/null
    tar czf "$EXPORT/logs.tar.gz" -C "$WORK" logs bench steps.jsonl 2>/dev/null
fi
log "summary: $WORK/summary.md ($(($(date +%s) - START)) s in all)"
exit $rc
