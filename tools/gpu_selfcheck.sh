#!/usr/bin/env bash
# GPU self-check: build the GPU environment, prove the CUDA path, measure what only a GPU gives,
# and train the GPU half of the learning study (docs/gpu_selfcheck.md). The harness lives in
# dev/gpu_selfcheck/; this entry hands it every argument (--help lists the options).
exec bash "$(dirname "${BASH_SOURCE[0]}")/../dev/gpu_selfcheck/selfcheck.sh" "$@"
