#!/bin/bash
# bench/binary_pairs.sh OLD NEW PAIRS BENCH-ARGS...: the same `longattn bench` shape run by two
# builds of longattn in alternating processes (so the shared machine's drift falls on both),
# and the medians of each and of the pairs' time ratios. Example, a change against main:
#   git worktree add /tmp/main main && cmake -S /tmp/main -B /tmp/main/build -G Ninja \
#     -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/main/build --target longattn_cli
#   bench/binary_pairs.sh /tmp/main/build/tools/longattn build/release/tools/longattn 7 \
#     --mode causal --n 16384 --d 64 --heads 2 --threads 1
set -euo pipefail
old=$1 new=$2 pairs=$3
shift 3
seconds() {
  local binary=$1
  shift
  "$binary" bench "$@" --baseline none --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["seconds"])'
}
olds=() news=()
for _ in $(seq "$pairs"); do
  olds+=("$(seconds "$old" "$@")")
  news+=("$(seconds "$new" "$@")")
done
python3 - "${olds[*]}" "${news[*]}" "$*" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
ratios = sorted(x / y for x, y in zip(a, b))
print(f"{sys.argv[3]}: old {statistics.median(a) * 1e3:.2f} ms  new {statistics.median(b) * 1e3:.2f} ms  "
      f"old/new {statistics.median(ratios):.3f}x (pairs {ratios[0]:.3f}-{ratios[-1]:.3f})")
PY
