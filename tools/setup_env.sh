#!/usr/bin/env bash
# Set up (once) the virtual environment that every mmmsf command runs in.
#
#   source tools/setup_env.sh          # from another script: creates/activates .venv
#   bash tools/setup_env.sh            # just set up
#
# What it does, only where something is missing:
#   1. creates  $MMMSF_VENV  (default: <repo>/.venv) with Python 3.11;
#   2. builds mmcv 2.1.0 *with compiled ops* from its PyPI source once, in a throw-away build
#      venv, and caches the wheel in $MMMSF_CACHE (default: ~/.cache/mmmsf/wheels) -- PyPI has
#      no mmcv wheels for current torch, and torch's headers need -std=c++20;
#   3. installs requirements/runtime.txt (+ faiss-gpu instead of faiss-cpu where CUDA is) and
#      mmmsf itself (editable).
# A stamp of the requirement files is kept in the venv, so a second run costs a second.
set -euo pipefail

MMMSF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MMMSF_VENV="${MMMSF_VENV:-$MMMSF_ROOT/.venv}"
MMMSF_CACHE="${MMMSF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmmsf}"
MMCV_VERSION="2.1.0"
TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"

_log() { echo "[setup_env] $*" >&2; }

_find_python() {
    for py in "${MMMSF_PYTHON:-}" python3.11 python3 python; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    _log "ERROR: Python 3.11 is required (set MMMSF_PYTHON=/path/to/python3.11)."; return 1
}

_has_cuda() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

_stamp() {
    # Everything that decides the environment's content.
    { cat "$MMMSF_ROOT"/requirements/*.txt "$MMMSF_ROOT/setup.cfg"; echo "cuda=$(_has_cuda && echo 1 || echo 0)"; } |
        sha256sum | cut -d' ' -f1
}

_build_mmcv_wheel() {
    # $1 = python, $2 = output wheel dir
    local py="$1" out="$2" tag
    tag="$(_has_cuda && echo cuda || echo cpu)"
    local bvenv="$MMMSF_CACHE/build-venv-$tag" src="$MMMSF_CACHE/src"
    _log "building mmcv $MMCV_VERSION with ops (once; ~12 min on 2 cores) ..."
    rm -rf "$bvenv" "$src" && mkdir -p "$src" "$out"
    "$py" -m venv "$bvenv"
    "$bvenv/bin/pip" install -q $TORCH_SPEC numpy wheel ninja
    # mmcv's setup.py needs pkg_resources (setuptools < 70); torch asks for >= 77 but builds fine.
    "$bvenv/bin/pip" install -q "setuptools<70" 2>&1 | grep -v "dependency conflicts\|requires setuptools\|resolver does not" >&2 || true
    # The sdist's metadata step imports torch, hence --no-build-isolation.
    "$bvenv/bin/pip" download -q --no-deps --no-binary :all: --no-build-isolation \
        "mmcv==$MMCV_VERSION" -d "$src"
    tar xzf "$src/mmcv-$MMCV_VERSION.tar.gz" -C "$src"
    # torch >= 2.6 headers need C++20; mmcv 2.1.0 hard-codes c++14/c++17.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' \
        "$src/mmcv-$MMCV_VERSION/setup.py"
    (cd "$src/mmcv-$MMCV_VERSION" &&
        MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$bvenv/bin/pip" wheel -q --no-deps --no-build-isolation . -w "$out")
    rm -rf "$bvenv" "$src"
    _log "cached $(ls "$out"/mmcv-*.whl)"
}

mmmsf_setup_env() {
    local stampfile="$MMMSF_VENV/.mmmsf-stamp" want
    want="$(_stamp)"
    if [ -f "$stampfile" ] && [ "$(cat "$stampfile")" = "$want" ]; then
        return 0
    fi
    local py; py="$(_find_python)"
    [ -x "$MMMSF_VENV/bin/python" ] || { _log "creating $MMMSF_VENV"; "$py" -m venv "$MMMSF_VENV"; }
    local tag; tag="$(_has_cuda && echo cuda || echo cpu)"
    local wdir="$MMMSF_CACHE/wheels/mmcv-$MMCV_VERSION-torch2.14.1-$tag"
    ls "$wdir"/mmcv-*.whl >/dev/null 2>&1 || _build_mmcv_wheel "$py" "$wdir"
    local extra="$MMMSF_ROOT/requirements/faiss-cpu.txt"
    _has_cuda && extra="$MMMSF_ROOT/requirements/faiss-gpu.txt"
    _log "installing requirements into $MMMSF_VENV"
    "$MMMSF_VENV/bin/pip" install -q "$(ls "$wdir"/mmcv-*.whl | head -n1)" \
        -r "$MMMSF_ROOT/requirements/runtime.txt" -r "$extra" -r "$MMMSF_ROOT/requirements/tests.txt"
    "$MMMSF_VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$MMMSF_ROOT"
    "$MMMSF_VENV/bin/python" -c "import mmcv.ops, mmdet, faiss, mmmsf; print('mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| faiss', faiss.__version__)" >&2
    echo "$want" >"$stampfile"
}

mmmsf_setup_env
export PATH="$MMMSF_VENV/bin:$PATH"
export VIRTUAL_ENV="$MMMSF_VENV"
