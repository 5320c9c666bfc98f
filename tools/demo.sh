#!/usr/bin/env bash
# The main job: set up the environment if needed, pre-train MSF w/s on the bundled real
# images (CPU, ~10 min), and print 1-NN / 20-NN of the trained vs. the random backbone.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh
python tools/demo.py "$@"
