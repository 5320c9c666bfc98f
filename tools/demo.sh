#!/usr/bin/env bash
# The main job: set up the light environment if needed (no compile: mmcv without ops, about a
# minute on a bare machine), pre-train MSF w/s on the bundled real images (CPU, <= 10 min), and
# print 1-NN / 20-NN of the trained backbone against random init and raw pixels, with the
# trained model's gains and their 95% intervals.
#   bash tools/demo.sh [tools/demo.py options, e.g. --seeds 0 1 2 3 4]
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh ""   # "": keep whatever install is there (at least light)
python tools/demo.py "$@"
