#!/usr/bin/env bash
# The test suite: set up the environment if needed, then run pytest on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh --full   # mmdet and the compiled ops (detection tests)
python -m pytest "$@"  # without arguments: testpaths of setup.cfg (tests/)
