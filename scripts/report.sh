#!/usr/bin/env bash
# The main job: builds longattn and writes the complexity-scaling report (CNN vs RNN vs
# self-attention, n = 256 … 65536, time and memory measured, slopes fitted, plots) under
# reports/; prints the measured table's crossovers and where the report is. About three minutes
# on 2 cores. Extra arguments go to `longattn report` (see `longattn report --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/release -j "$(nproc)" --target longattn_cli
build/release/tools/longattn report "$@"
