#!/bin/bash
# bench/ceiling_series.sh [FOLDER] [ROUNDS]: the register-block ceiling (longattn_issue_slots)
# and the engine's D = 64 and D = 128 lines (n = 16384, H = 8, 1 thread), alternating on core 0,
# so that each round's ratio is taken in one phase of this shared machine (about 35 s a round).
# build/release must be configured (scripts/test.sh or scripts/bench.sh does it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/ceiling-$(date +%Y%m%d-%H%M%S)}
rounds=${2:-9}
bin=build/release
mkdir -p "$out"
cmake --build "$bin" --target longattn_cli longattn_issue_slots > /dev/null
for i in $(seq "$rounds"); do
  taskset -c 0 "$bin/bench/longattn_issue_slots" > "$out/slots-$i.txt"
  for d in 64 128; do
    taskset -c 0 "$bin/tools/longattn" bench --mode full --n 16384 --d "$d" --heads 8 --threads 1 \
      --baseline none --json > "$out/engine-d$d-$i.json"
  done
  python3 - "$out" "$i" <<'PY'
import json, sys
out, i = sys.argv[1], sys.argv[2]
last = open(f"{out}/slots-{i}.txt").read().strip().splitlines()[-1]
ceiling = last.split("rate: ")[1] if "rate: " in last else "n/a (no AVX-512)"
engine = []
for d in (64, 128):
    j = json.load(open(f"{out}/engine-d{d}-{i}.json"))
    engine.append(f"D={d} {j['gflops']:.1f} GFLOP/s {j['peak_pct']:.1f} % of {j['peak_gflops']:.1f}")
print(f"round {i}: register blocks {ceiling} | engine " + "; ".join(engine), flush=True)
PY
done | tee "$out/series.txt"
