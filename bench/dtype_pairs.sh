#!/bin/bash
# bench/dtype_pairs.sh PAIRS BENCH-ARGS...: the same `longattn bench` shape with fp32 and with
# bf16 inputs (DTYPE=bf16-kv: fp32 q, bf16 k and v; OTHER="ARGS": these bench arguments
# instead, e.g. OTHER="--qk-precision int8"), in alternating processes (so the shared
# machine's drift falls on both), and the medians of each and of the pairs' ratios. Example:
#   bench/dtype_pairs.sh 5 --mode causal --n 65536 --nq 1 --d 128 --heads 8 --threads 1
# build/release must be built (scripts/test.sh or scripts/bench.sh does it).
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=$1
shift
other=${DTYPE:-bf16}
other_args=(--dtype "$other")
if [[ -n ${OTHER:-} ]]; then
  read -ra other_args <<< "$OTHER"
  other=$OTHER
fi
seconds() {
  build/release/tools/longattn bench "$@" --baseline none --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["seconds"])'
}
fp32=() others=()
for _ in $(seq "$pairs"); do
  fp32+=("$(seconds "$@" --dtype fp32)")
  others+=("$(seconds "$@" "${other_args[@]}")")
done
python3 - "${fp32[*]}" "${others[*]}" "$*" "$other" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
other = sys.argv[4]
ratios = sorted(x / y for x, y in zip(a, b))
print(f"{sys.argv[3]}: fp32 {statistics.median(a) * 1e3:.2f} ms  {other} {statistics.median(b) * 1e3:.2f} ms  "
      f"fp32/{other} {statistics.median(a) / statistics.median(b):.2f}x (pairs {ratios[0]:.2f}-{ratios[-1]:.2f})")
PY
