#!/usr/bin/env bash
# GPU self-check: build the GPU environment, prove the CUDA path, measure what only a GPU gives,
# and train the GPU half of the learning study.
#
#   bash tools/gpu_selfcheck.sh --pack .gpu_pack   # here, with an index: what travels + the command
#   bash tools/gpu_selfcheck.sh --rehearse         # here, on the CPU: that command, offline, end to end
#   bash tools/gpu_selfcheck.sh                    # one GPU, <= 8 minutes (--budget), no toolkit needed
#   bash tools/gpu_selfcheck.sh --dry-run          # on any machine: every step exists, parses, is wired
#
# Writes OUT/summary.md and OUT/summary.json (OUT: --out, default work_dirs/gpu_selfcheck) with
# each step's status and time, the environment, the `pytest -m cuda` results, the study and the
# benchmark tables; logs in OUT/logs/, benchmark JSON in OUT/bench/, the study in OUT/study/.
# (This is dev/gpu_selfcheck/selfcheck.sh; tools/gpu_selfcheck.sh hands it every argument.)
# Steps, in this order:
#   env_venv env_install env_mmcv env_mmmsf    the GPU environment (docs/gpu_selfcheck.md), mmcv
#                                             without compiled ops (a wheel, or its source)
#   env_report                                versions, GPU, driver, CUDA runtimes
#   cuda_tests                                python -m pytest -m cuda tests/test_cuda
#   study_data study_plan study study_export  MSF w/s (k = 5) and BYOL-asym (k = 1) on the packed
#                                             CIFAR-10 images (--data), as many epochs as fit,
#                                             kNN vs random init and raw pixels; the backbones
#   bench_*                                   python -m benchmarks.* --device cuda, trimmed to fit
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
#                   without a package index; a wheelhouse made by --pack is installed as it is
#   --data F        the packed CIFAR-10 images (--pack's cifar10-jpg.tar.gz) for the study;
#                   without it the study steps are skipped and say so
#   --budget S      wall-time budget in seconds (default 480)
#   --no-mmcv-ops   skip the CUDA-ops build
#   --cpu-rehearsal no GPU here: the CUDA-only steps are recorded as skipped by name and their
#                   CPU stand-ins run (one-iteration benchmarks, the study on a few images)
#   --out D         output folder;  --export D  also copy what comes back to D (<= 8 files:
#                   summary.md, summary.json, logs.tar.gz, the study's backbones in <= 16 MiB parts)
#   --pack D        prepare what travels in D (inside the checkout, git-ignored): a wheelhouse of
#                   what the target lacks (--python: its interpreter, default the stand-in below)
#                   and the images of $MMMSF_STUDY_DATA (default ../shared/data/cifar10-jpg);
#                   prints the size of all that travels, the command, what to carry, its limit
#   --rehearse      the GPU run on this CPU machine: a stand-in for the GPU machine's Python
#                   (CPython 3.12 + torch 2.11.0 + torchvision 0.26.0 from PyPI, built once in
#                   $MMMSF_CACHE, default ~/.cache/mmmsf), --pack .gpu_pack, then the printed
#                   command in a copy of what travels, with no package index, --cpu-rehearsal;
#                   fails if a step that should run did not, or what comes back breaks a limit
set -uo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
ROOT="${MMMSF_ROOT:-$(cd "$(dirname "$SELF")/../.." && pwd)}"
HARNESS="dev/gpu_selfcheck"  # this folder, relative to ROOT (where the steps run)
MMCV_VERSION="2.1.0"
TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"

# the GPU machine we can get (docs/gpu_selfcheck.md): its Python and torch, for the stand-in
STANDIN_PYTHON="3.12" STANDIN_TORCH="torch==2.11.0 torchvision==0.26.0"
STANDIN_EXTRA="numpy opencv-python-headless matplotlib tensorboard pytest scipy"
# the study: full-width small-image ResNet-18, 32 px views made batch-wise on the GPU
STUDY_CONFIGS="${MMMSF_STUDY_CONFIGS:-configs/cifar/msf_r18_200e_cifar10.py configs/cifar/byol-asym_r18_200e_cifar10.py}"
RUN_BUDGET=500   # --budget of the printed command: 9 minutes in all with the machine's own steps
RUN_LIMIT=600    # the time limit to give that command
PACK_REL=".gpu_pack"  # where --rehearse packs (git-ignored)

DRY=0 ENV_MODE=venv BASE_PY="" WHEELHOUSE="" BUDGET=480 MMCV_OPS=1 OUT="" EXPORT=""
DATA="" CPU_REHEARSAL=0 PACK="" REHEARSE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --env) ENV_MODE="${2:?--env needs venv or system}"; shift ;;
        --python) BASE_PY="${2:?--python needs an interpreter}"; shift ;;
        --wheelhouse) WHEELHOUSE="$(cd "${2:?--wheelhouse needs a folder}" 2>/dev/null && pwd)" || {
            echo "gpu_selfcheck: --wheelhouse $2 is not a folder" >&2; exit 2; }; shift ;;
        --data) [ -f "${2:?--data needs a file}" ] ||
            { echo "gpu_selfcheck: --data $2 is not a file" >&2; exit 2; }
            DATA="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift ;;
        --budget) BUDGET="${2:?--budget needs seconds}"; shift ;;
        --no-mmcv-ops) MMCV_OPS=0 ;;
        --cpu-rehearsal) CPU_REHEARSAL=1 ;;
        --out) OUT="${2:?--out needs a folder}"; shift ;;
        --export) EXPORT="${2:?--export needs a folder}"; shift ;;
        --pack) PACK="${2:?--pack needs a folder inside the checkout}"; shift ;;
        --rehearse) REHEARSE=1 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$SELF" | sed '$d'; exit 0 ;;
        *) echo "gpu_selfcheck: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$ENV_MODE" in venv|system) ;; *)
    echo "gpu_selfcheck: --env $ENV_MODE: use venv or system" >&2; exit 2 ;; esac
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "gpu_selfcheck: --budget $BUDGET: seconds" >&2; exit 2; }
MMMSF_CACHE="${MMMSF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmmsf}"

# ------------------------------------------------------------------------------- --pack, --rehearse
find_python312() {  # a CPython $STANDIN_PYTHON: on the PATH, in pyenv, or from uv (via pip)
    local py v="$STANDIN_PYTHON"
    for py in "${MMMSF_STANDIN_BASE:-}" "python$v" "$HOME"/.pyenv/versions/"$v"*/bin/python"$v"; do
        [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 &&
            "$py" -c "import sys, venv, ensurepip; sys.exit('%d.%d' % sys.version_info[:2] != '$v')" \
                2>/dev/null && { command -v "$py"; return 0; }
    done
    local uv="$MMMSF_CACHE/uv-venv"  # uv from PyPI installs a python-build-standalone CPython
    [ -x "$uv/bin/uv" ] || { python3 -m venv "$uv" && "$uv/bin/pip" install -q uv >&2; } ||
        { echo "[gpu_selfcheck] no Python $v and no uv to install one" >&2; return 1; }
    UV_PYTHON_INSTALL_DIR="$MMMSF_CACHE/uv-python" "$uv/bin/uv" python install "$v" >&2 &&
        UV_PYTHON_INSTALL_DIR="$MMMSF_CACHE/uv-python" "$uv/bin/uv" python find "$v"
}

standin_python() {  # print a CPython $STANDIN_PYTHON venv with $STANDIN_TORCH (built once)
    local dir="$MMMSF_CACHE/standin-cp${STANDIN_PYTHON/./}-torch2.11.0" py
    local stamp="$STANDIN_PYTHON $STANDIN_TORCH $STANDIN_EXTRA"
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.standin" 2>/dev/null)" = "$stamp" ]; then
        echo "$dir/bin/python"; return 0
    fi
    py="$(find_python312)" || return 1
    echo "[gpu_selfcheck] building the stand-in $dir from $py (once; ~5 GB of CUDA wheels)" >&2
    rm -rf "$dir" && "$py" -m venv "$dir" &&
        nice -n 19 "$dir/bin/python" -m pip install -q --disable-pip-version-check \
            $STANDIN_TORCH $STANDIN_EXTRA >&2 || { rm -rf "$dir"; return 1; }
    echo "$stamp" >"$dir/.standin"
    echo "$dir/bin/python"
}

pack_command() {  # the command to run on the GPU machine, from the checkout's root
    echo "bash tools/gpu_selfcheck.sh --env system --python python3 --wheelhouse $1/wheelhouse" \
        "--data $1/cifar10-jpg.tar.gz --no-mmcv-ops --budget $RUN_BUDGET" \
        "--out work_dirs/gpu_selfcheck --export \"\$OUT\"${2:-}"
}

do_pack() {  # do_pack DIR [PY]: what travels, its size, the command
    local dir="$1" py="${2:-}" rel src="${MMMSF_STUDY_DATA:-$ROOT/../shared/data/cifar10-jpg}"
    [ -n "$py" ] || py="$(standin_python)" || return 1
    (cd "$ROOT" && python3 $HARNESS/pack.py pack "$dir" --python "$py" --data "$src") || return 1
    rel="$(cd "$ROOT" && python3 -c 'import os, sys; print(os.path.relpath(os.path.abspath(sys.argv[1])))' "$dir")"
    echo
    echo "Send the checkout with this carried path: $rel   (1 of the 8 carried paths)"
    echo "Time limit to give the command: $RUN_LIMIT s (the self-check's own budget: $RUN_BUDGET s)"
    echo "Run there, from the checkout's root (no package index needed):"
    echo "  $(pack_command "$rel")"
    echo "It leaves at most 8 files in \$OUT, none over 16 MiB, no folder below it."
}

do_rehearse() {  # the printed command, offline, on this CPU machine, in a copy of what travels
    local py copy="${MMMSF_REHEARSAL_DIR:-$ROOT/work_dirs/gpu_rehearsal}" rc t0 cmd
    t0=$(date +%s)
    py="$(standin_python)" || { echo "[rehearse] no stand-in interpreter: FAILED" >&2; return 1; }
    echo "[rehearse] stand-in for the GPU machine's python3: $py ($("$py" -c 'import sys, torch, torchvision
print("Python %d.%d.%d" % sys.version_info[:3], "torch", torch.__version__, "torchvision", torchvision.__version__)'))"
    do_pack "$ROOT/$PACK_REL" "$py" || { echo "[rehearse] --pack FAILED" >&2; return 1; }
    rm -rf "$copy" && mkdir -p "$copy/OUT" "$copy/bin" || return 1
    (cd "$ROOT" && python3 $HARNESS/pack.py copy-travel "$copy/tree" --carry "$PACK_REL") ||
        return 1
    printf '#!/bin/sh\nexec "%s" "$@"\n' "$py" >"$copy/bin/python3"  # the machine's python3
    chmod +x "$copy/bin/python3"
    # the same command; the CPU is far slower than the GPU, so its budget is the CPU's
    cmd="$(pack_command "$PACK_REL" " --cpu-rehearsal --budget ${MMMSF_REHEARSAL_BUDGET:-3000}")"
    echo "[rehearse] $(($(date +%s) - t0)) s: in $copy/tree, offline (PIP_NO_INDEX=1, no pip"
    echo "           configuration, proxies unreachable), python3 = the stand-in: $cmd"
    (cd "$copy/tree" && env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL \
        -u PIP_CONSTRAINT -u PYTHONPATH -u VIRTUAL_ENV -u MMMSF_ROOT -u MMMSF_VENV \
        PIP_NO_INDEX=1 PIP_CONFIG_FILE=/dev/null http_proxy=http://127.0.0.1:9 \
        https_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 \
        HTTPS_PROXY=http://127.0.0.1:9 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        PATH="$copy/bin:$PATH" OUT="$copy/OUT" nice -n 19 bash -c "$cmd")
    rc=$?
    echo "[rehearse] the command exited $rc; $(($(date +%s) - t0)) s in all"
    (cd "$ROOT" && python3 $HARNESS/pack.py check-out "$copy/OUT") || rc=1
    (cd "$ROOT" && python3 $HARNESS/selfcheck.py rehearsal-verdict \
        "$copy/tree/work_dirs/gpu_selfcheck") || rc=1
    [ $rc = 0 ] && echo "[rehearse] PASSED" || echo "[rehearse] FAILED"
    return $rc
}

if [ -n "$PACK" ]; then do_pack "$PACK" "$BASE_PY"; exit $?; fi
if [ "$REHEARSE" = 1 ]; then do_rehearse; exit $?; fi

OUT="${OUT:-$ROOT/work_dirs/gpu_selfcheck}"
if [ "$DRY" = 1 ]; then  # the dry run writes nothing under OUT that could pass for results
    WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
else
    mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)" && WORK="$OUT"
    rm -rf "$OUT/logs" "$OUT/bench" "$OUT/steps.jsonl" "$OUT/summary.md" "$OUT/summary.json" \
        "$OUT/env.json" "$OUT/cuda_tests.xml" "$OUT/cpu_tests.xml" "$OUT/study" "$OUT/data" \
        "$OUT/backbones"
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
        # works where that interpreter is itself a venv (--system-site-packages would not);
        # site.addsitedir also runs their .pth files (setuptools' distutils shim: Python 3.12
        # has no distutils, and mmengine's collect_env imports it)
        "$py" -c 'import site, sys, sysconfig
paths = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")] + site.getsitepackages()
print("\n".join("import site; site.addsitedir(%r)" % p for p in dict.fromkeys(p for p in paths if p)))' \
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
    elif [ -f "$WHEELHOUSE/pack.json" ]; then  # made by --pack for this machine: exactly what
        # it lacks, resolved there; --no-deps, so mmengine's `opencv-python` does not pull a
        # second OpenCV beside the machine's (its cv2 covers it)
        log "installing the packed wheelhouse as it is: $(cd "$WHEELHOUSE" && echo *.whl)"
        [ -z "$(ls "$WHEELHOUSE"/*.whl 2>/dev/null)" ] || pip_install --no-deps "$WHEELHOUSE"/*.whl
    else  # keep the interpreter's torch; add what is missing, without touching torch
        local missing
        missing="$(cd "$ROOT" && "$PY" $HARNESS/selfcheck.py missing-requirements)" || return 1
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
    if [ -f "$WHEELHOUSE/pack.json" ]; then  # the pack's mmcv-lite wheel, installed with the rest
        "$PY" -c 'import mmcv, mmcv.transforms; print("mmcv", mmcv.__version__, "(mmcv-lite from the wheelhouse, no compiled ops)")'
        return
    fi
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
    if "$PY" -c 'import setuptools' 2>/dev/null; then
        pip_install --no-deps --no-build-isolation -e "$ROOT" || return 1
    else  # no setuptools to build the editable install: the checkout on the path
        echo "$ROOT" >"$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/mmmsf_checkout.pth"
        log "no setuptools: $ROOT put on the venv's path (mmmsf_checkout.pth)"
    fi
    "$PY" -c 'import mmmsf, mmcv, mmengine, torch; print("mmmsf from", mmmsf.__file__)' || return 1
    "$PY" -c 'import faiss' 2>/dev/null || log "no faiss here: the search is the torch one"
    return 0
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
record() {  # record NAME STATUS SECONDS RC NOTE [WHY]   (one JSON line per step; WHY of a
    # skip: budget, cuda-only, not-requested, no-data)
    local note
    note="$(printf '%s' "$5" | tr -cd '[:print:]' | tr '"\\' "'/")"
    printf '{"name": "%s", "status": "%s", "seconds": %s, "rc": %s, "note": "%s", "why": "%s", "log": "logs/%s.log"}\n' \
        "$1" "$2" "$3" "$4" "$note" "${6:-}" "$1" >>"$WORK/steps.jsonl"
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
        record "$name" skipped 0 0 "budget of ${BUDGET} s used up" budget; return 1
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

# ------------------------------------------------------------------------------- the steps
skip_step() {  # skip_step NAME WHY NOTE: a step not run on purpose (recorded, named in the summary)
    [ "$DRY" = 1 ] && return 0
    log "$1: skipped ($3)"
    record "$1" skipped 0 0 "$3" "$2"
}

gpu_step() {  # gpu_step NAME MAX python ARGS...: a CUDA-only step; skipped by name in a rehearsal
    if [ "$CPU_REHEARSAL" = 1 ] && [ "$DRY" = 0 ]; then
        skip_step "$1" cuda-only "cuda only: the rehearsal has no GPU"; return 0
    fi
    run_step "$@"
}

bench() {  # bench NAME MAX ARGS...: python -m benchmarks.NAME on the GPU; in a rehearsal,
    # its GPU arguments checked by its parser and one --quick iteration on the CPU instead
    local name="$1" max="$2"; shift 2
    gpu_step "bench_$name" "$max" python -m "benchmarks.$name" --device cuda "$@" \
        --out "$BENCH/$name.json"
    if [ "$CPU_REHEARSAL" = 1 ] && [ "$DRY" = 0 ]; then
        run_step "bench_${name}_cpu" 300 python $HARNESS/selfcheck.py rehearse-bench \
            "$BENCH/$name.json" -- -m "benchmarks.$name" --device cuda "$@"
    fi
}

study_data() {  # unpack the packed images; a rehearsal keeps a few per class (hard links)
    [ "${CHECK_ONLY:-0}" = 1 ] && { [ -z "$DATA" ] || tar tzf "$DATA" >/dev/null; return; }
    [ -n "$DATA" ] || { log "no --data"; return 1; }
    rm -rf "$WORK/data" && mkdir -p "$WORK/data" && tar xzf "$DATA" -C "$WORK/data" || return 1
    echo "unpacked: train $(find "$WORK/data/cifar10-jpg/train" -type f | wc -l)," \
        "test $(find "$WORK/data/cifar10-jpg/test" -type f | wc -l) images"
    [ "$CPU_REHEARSAL" = 1 ] || return 0
    local split n c
    for split in train:16 test:10; do
        n="${split#*:}" split="${split%%:*}"
        for c in "$WORK/data/cifar10-jpg/$split"/*/; do
            mkdir -p "$WORK/data/rehearsal/$split/$(basename "$c")"
            find "$c" -type f | sort | head -n "$n" |
                xargs -I{} ln {} "$WORK/data/rehearsal/$split/$(basename "$c")/"
        done
    done
    echo "rehearsal subset: $(find "$WORK/data/rehearsal/train" -type f | wc -l) train," \
        "$(find "$WORK/data/rehearsal/test" -type f | wc -l) test images"
}

# the runner calls the env steps in a child shell under timeout
export ROOT HARNESS VENV PY WHEELHOUSE ENV_MODE BASE_PY WORK MMCV_VERSION TORCH_SPEC DATA CPU_REHEARSAL
export -f log vpip pip_install find_python env_venv requirement_files env_install build_setuptools \
    mmcv_source env_mmcv env_mmmsf cuda_home_for_build mmcv_ops study_data

if [ "$DRY" = 1 ]; then
    bash -n "$SELF" || { echo "[dry-run] shell syntax BROKEN"; exit 1; }
    for c in timeout tar sed awk date; do
        command -v "$c" >/dev/null || { echo "[dry-run] missing command $c"; BROKEN=1; }
    done
    PY="${PYTHON:-$(command -v python3)}"  # checks the Python steps with this interpreter
fi

run_step env_venv 120 fn env_venv
run_step env_install 300 fn env_install
run_step env_mmcv 150 fn env_mmcv
run_step env_mmmsf 60 fn env_mmmsf
if [ "$CPU_REHEARSAL" = 1 ]; then
    run_step env_report 60 python $HARNESS/selfcheck.py env-report "$WORK/env.json" --no-gpu-ok
else
    run_step env_report 60 python $HARNESS/selfcheck.py env-report "$WORK/env.json"
fi
gpu_step cuda_tests 150 python -m pytest -m cuda tests/test_cuda -q -rA -p no:cacheprovider \
    --junitxml "$WORK/cuda_tests.xml"
if [ "$CPU_REHEARSAL" = 1 ]; then  # the same tests' CPU halves (device='cpu')
    run_step cuda_tests_cpu_halves 600 python -m pytest -m "not cuda" tests/test_cuda -q -rA \
        -p no:cacheprovider --junitxml "$WORK/cpu_tests.xml"
fi

# the study: MSF (k = 5) vs BYOL-asym (k = 1) on the packed images, epochs from a probe
read -r STUDY_MSF STUDY_BYOL <<<"$STUDY_CONFIGS"
STUDY="$WORK/study"
WORKERS=$(( $(nproc) - 2 )); [ "$WORKERS" -gt 12 ] && WORKERS=12; [ "$WORKERS" -lt 1 ] && WORKERS=1
STUDY_OPTS=(train_dataloader.num_workers=$WORKERS train_dataloader.persistent_workers=True)
STUDY_ROOT="$WORK/data/cifar10-jpg" PROBE=()
if [ "$CPU_REHEARSAL" = 1 ]; then  # a few iterations of the same runs on a few images
    STUDY_ROOT="$WORK/data/rehearsal" WORKERS=1
    STUDY_OPTS=(train_dataloader.num_workers=1 train_dataloader.persistent_workers=True
                train_dataloader.batch_size=32)
    PROBE=(--max-epochs 1 --steps 1 --loader-batches 2)
fi
if [ -z "$DATA" ] && [ "$DRY" = 0 ]; then
    for s in study_data study_plan study study_export; do
        skip_step "$s" no-data "no --data (the packed images): the study did not run"
    done
else
    mkdir -p "$STUDY"
    run_step study_data 60 fn study_data
    # training seconds per config: what is left after the kNN of both runs and the benchmarks
    LEFT=$((DEADLINE - $(date +%s) - RESERVE))
    STUDY_S=$(( (LEFT - 2 * 45 - 110) / 2 )); [ "$STUDY_S" -gt 180 ] && STUDY_S=180
    [ "$STUDY_S" -lt 20 ] && STUDY_S=20
    run_step study_plan 90 python $HARNESS/study.py plan "$STUDY_MSF" --data-root "$STUDY_ROOT" \
        --seconds "$STUDY_S" "${PROBE[@]}" --out "$STUDY/plan.json" --cfg-options "${STUDY_OPTS[@]}"
    EPOCHS=1
    [ -f "$STUDY/plan.json" ] && EPOCHS="$("$PY" -c 'import json, sys
print(json.load(open(sys.argv[1]))["epochs"])' "$STUDY/plan.json" 2>/dev/null || echo 1)"
    run_step study $((2 * STUDY_S + 150)) python tools/cifar_benchmark.py \
        --data-root "$STUDY_ROOT" --configs "$STUDY_MSF" "$STUDY_BYOL" --work-dir "$STUDY" \
        --page "$STUDY/page.md" --no-export \
        --cfg-options "train_cfg.max_epochs=$EPOCHS" "${STUDY_OPTS[@]}"
    run_step study_export 60 python $HARNESS/study.py export "$STUDY" "$WORK/backbones"
fi

bench step_overhead 100 --bank-sizes 128000 1024000 --searches torch --batch 128 --repeats 5 \
    --steps 2
bench step_throughput 60 --batch 128 --repeats 3 --steps 3
bench search_kernel 45 --shapes 256x128000x512 256x1024000x512 --repeats 5 \
    --chunk-sizes 32768 262144
bench memory 30 --bank-sizes 128000 1024000 --dataset-sizes 20000
bench data_loading 30 --images 256 --workers 4 8 --loader-batch 32
if [ "$MMCV_OPS" = 1 ]; then
    run_step mmcv_ops 100000 fn mmcv_ops &&
        run_step mmcv_ops_check 60 python $HARNESS/selfcheck.py mmcv-ops-check
else
    skip_step mmcv_ops not-requested "--no-mmcv-ops: mmcv's CUDA ops (detection only) not built"
fi

if [ "$DRY" = 1 ]; then
    # the Python steps, each with its own parser (benchmarks), collection (pytest) or compiler
    (cd "$ROOT" && "$PY" $HARNESS/selfcheck.py validate "$PLAN") || BROKEN=1
    # and the summary of a run in which nothing ran yet
    (cd "$ROOT" && "$PY" $HARNESS/selfcheck.py summarize "$WORK" --budget "$BUDGET" >/dev/null)
    if [ ! -s "$WORK/summary.md" ]; then echo "[dry-run] summarize BROKEN"; BROKEN=1; fi
    if [ "$BROKEN" = 1 ]; then echo "[dry-run] FAILED: a step above is broken"; exit 1; fi
    echo "[dry-run] all $(wc -l <"$PLAN") steps ok"
    exit 0
fi

# summary (with whichever Python exists: the venv's, or the one that started us)
SUMPY="$PY"; [ -x "$SUMPY" ] || SUMPY="$(command -v python3)"
SUMARGS=(--budget "$BUDGET"); [ "$CPU_REHEARSAL" = 1 ] && SUMARGS+=(--rehearsal)
(cd "$ROOT" && "$SUMPY" $HARNESS/selfcheck.py summarize "$WORK" "${SUMARGS[@]}") \
    >"$LOGS/summary.log" 2>&1
rc=$?
tail -n +1 "$WORK/summary.md" 2>/dev/null || cat "$LOGS/summary.log"
if [ -n "$EXPORT" ]; then  # what comes back: <= 8 plain files, <= 16 MiB each, no folder
    mkdir -p "$EXPORT" && cp "$WORK/summary.md" "$WORK/summary.json" "$EXPORT/" 2>/dev/null
    (cd "$WORK" && tar czf "$EXPORT/logs.tar.gz" logs bench steps.jsonl $(ls env.json \
        cuda_tests.xml cpu_tests.xml study/plan.json study/page.md study/*.png \
        study/results.json study/export.json 2>/dev/null))
    cp "$WORK"/backbones/backbones_fp16.pt* "$EXPORT/" 2>/dev/null
    (cd "$ROOT" && python3 $HARNESS/pack.py check-out "$EXPORT") >&2 || rc=1
fi
log "summary: $WORK/summary.md ($(($(date +%s) - START)) s in all)"
exit $rc
