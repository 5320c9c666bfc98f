#!/usr/bin/env bash
# Set up the virtual environment that every mmmsf command runs in.
#
#   bash tools/setup_env.sh            # light: pre-training, kNN, linear probe (about a minute)
#   bash tools/setup_env.sh --full     # + mmdet and mmcv's compiled ops (detection, test suite)
#   bash tools/setup_env.sh --light    # back to light: removes mmdet and the compiled ops
#   source tools/setup_env.sh ""       # from another script: sets up and activates the venv
#   source tools/setup_env.sh --full   #   (pass an argument: a bare `source` would see the
#                                      #   caller's arguments)
#
# Two installs of one pinned stack (requirements/):
#   light  runtime.txt + faiss + pytest + mmcv-lite 2.1.0, the PyPI wheel of mmcv 2.1.0 without
#          compiled ops (`import mmcv` and its transforms; nothing is compiled);
#   full   runtime.txt + faiss + pytest + detection.txt (mmdet 3.3.0) + mmcv 2.1.0 *with* ops,
#          built once from its PyPI source in a throw-away build venv and cached in
#          $MMMSF_CACHE/wheels (PyPI has no mmcv wheel for current torch; torch's headers need
#          -std=c++20). The build takes 10-30 minutes on 2 cores, later installs seconds.
# Without a flag the venv is left as it is when it already holds either install (full includes
# light), so the demo never compiles and never undoes a full install. mmcv and mmcv-lite share
# the `mmcv` package folder, so one is always uninstalled before the other is installed.
# A stamp (install + hash of the requirement files) is kept in the venv: a second run costs a
# second. MMMSF_VENV (default <repo>/.venv), MMMSF_CACHE (default ~/.cache/mmmsf) and
# MMMSF_PYTHON (a Python 3.11) move things.
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

_mmcv_wheel_dir() { echo "$MMMSF_CACHE/wheels/mmcv-$MMCV_VERSION-torch2.14.1-$(_has_cuda && echo cuda || echo cpu)"; }

_build_mmcv_wheel() {
    # $1 = python, $2 = output wheel dir
    local py="$1" out="$2" tag
    tag="$(_has_cuda && echo cuda || echo cpu)"
    local bvenv="$MMMSF_CACHE/build-venv-$tag" src="$MMMSF_CACHE/src"
    _log "building mmcv $MMCV_VERSION with ops (once; 10-30 min on 2 cores) ..."
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

_installed() { "$MMMSF_VENV/bin/pip" show -q "$1" >/dev/null 2>&1; }

_install_light() {
    local extra="$1"
    if _installed mmcv || _installed mmdet; then
        _log "removing mmdet and mmcv (compiled ops) for the light install"
        "$MMMSF_VENV/bin/pip" uninstall -q -y mmdet mmcv mmcv-lite 2>&1 | grep -v "^WARNING: Skipping" >&2 || true
    fi
    _log "installing the light stack into $MMMSF_VENV (no compile)"
    "$MMMSF_VENV/bin/pip" install -q -r "$MMMSF_ROOT/requirements/mmcv-lite.txt" \
        -r "$MMMSF_ROOT/requirements/runtime.txt" -r "$extra" -r "$MMMSF_ROOT/requirements/tests.txt"
}

_install_full() {
    local py="$1" extra="$2" wdir
    wdir="$(_mmcv_wheel_dir)"
    ls "$wdir"/mmcv-*.whl >/dev/null 2>&1 || _build_mmcv_wheel "$py" "$wdir"
    if _installed mmcv-lite; then   # same `mmcv` folder: remove it before, never after
        _log "removing mmcv-lite for the full install"
        "$MMMSF_VENV/bin/pip" uninstall -q -y mmcv-lite mmcv 2>&1 | grep -v "^WARNING: Skipping" >&2 || true
    fi
    _log "installing the full stack into $MMMSF_VENV"
    "$MMMSF_VENV/bin/pip" install -q "$(ls "$wdir"/mmcv-*.whl | head -n1)" \
        -r "$MMMSF_ROOT/requirements/runtime.txt" -r "$MMMSF_ROOT/requirements/detection.txt" \
        -r "$extra" -r "$MMMSF_ROOT/requirements/tests.txt"
}

mmmsf_setup_env() {
    # $1 = '' (whatever is there, at least light), 'light' or 'full'
    local want_mode="${1:-}" stampfile="$MMMSF_VENV/.mmmsf-stamp" want have_mode="" have_hash=""
    want="$(_stamp)"
    if [ -f "$stampfile" ]; then
        read -r have_hash have_mode <"$stampfile" || true
        [ -n "$have_mode" ] || have_mode=full   # stamps written before the light install existed
    fi
    local mode="${want_mode:-${have_mode:-light}}"
    if [ "$have_hash" = "$want" ] && [ "$have_mode" = "$mode" ]; then
        return 0
    fi
    if [ -z "$want_mode" ] && [ "$mode" = full ] && ! ls "$(_mmcv_wheel_dir)"/mmcv-*.whl >/dev/null 2>&1; then
        mode=light   # a changed requirement must not start a 10-30 min build for the demo
    fi
    local py; py="$(_find_python)"
    [ -x "$MMMSF_VENV/bin/python" ] || { _log "creating $MMMSF_VENV"; "$py" -m venv "$MMMSF_VENV"; }
    local extra="$MMMSF_ROOT/requirements/faiss-cpu.txt"
    _has_cuda && extra="$MMMSF_ROOT/requirements/faiss-gpu.txt"
    if [ "$mode" = full ]; then _install_full "$py" "$extra"; else _install_light "$extra"; fi
    "$MMMSF_VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$MMMSF_ROOT"
    if [ "$mode" = full ]; then
        "$MMMSF_VENV/bin/python" -c "import mmcv.ops, mmdet, faiss, mmmsf; print('full install: mmcv', mmcv.__version__, 'with ops | mmdet', mmdet.__version__, '| faiss', faiss.__version__)" >&2
    else
        "$MMMSF_VENV/bin/python" -c "import mmcv, mmcv.transforms, faiss, mmmsf; print('light install: mmcv', mmcv.__version__, 'without ops | faiss', faiss.__version__, '| detection: bash tools/setup_env.sh --full')" >&2
    fi
    echo "$want $mode" >"$stampfile"
}

case "${1:-}" in
    '') mmmsf_setup_env '' ;;
    --light) mmmsf_setup_env light ;;
    --full) mmmsf_setup_env full ;;
    *) _log "ERROR: unknown option '$1' (use --light or --full)"; return 2 2>/dev/null || exit 2 ;;
esac
export PATH="$MMMSF_VENV/bin:$PATH"
export VIRTUAL_ENV="$MMMSF_VENV"
