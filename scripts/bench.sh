#!/usr/bin/env bash
# The main job: builds longattn and runs the attention benchmark at n = 16384 (B=1, H=8,
# D=64, 1 thread) against the oneDNN materialized baseline; prints the figures and writes
# them as JSON under reports/. Extra arguments go to `longattn bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/release -j "$(nproc)" --target longattn_cli

mkdir -p reports
report="reports/bench-$(date +%Y%m%d-%H%M%S).json"
build/release/tools/longattn bench --mode full --n 16384 --d 64 --heads 8 --threads 1 \
  --output "$report" "$@"
echo "Report written to $(pwd)/$report"
