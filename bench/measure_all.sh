#!/usr/bin/env bash
# Re-measures every figure bench/RESULTS.md quotes, one command per line, each result kept
# as JSON in the folder given (default reports/results-<time>). Takes about 20–30 minutes on
# 2 cores; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/results-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
cli=build/release/tools/longattn
cmake --build build/release --target longattn_cli longattn_kernel_benchmarks > /dev/null

run() {  # name, then the bench arguments
  local name=$1; shift
  echo "== longattn bench $*"
  "$cli" bench "$@" --output "$out/$name.json" | sed 's/^/   /'
}

run full_d64        --mode full   --n 16384 --d 64  --heads 8 --threads 1
run full_d128       --mode full   --n 16384 --d 128 --heads 8 --threads 1
run full_d64_nobase --mode full   --n 16384 --d 64  --heads 8 --threads 1 --baseline none
run causal_d64      --mode causal --n 16384 --d 64  --heads 8 --threads 1 --baseline none
run avx2_d64        --mode full   --n 16384 --d 64  --heads 8 --threads 1 --isa avx2 --baseline none
run full_d64_t2     --mode full   --n 16384 --d 64  --heads 8 --threads 2
# bf16 q, k, v: native products (vdpbf16ps where the CPU has AVX512-BF16) against fp32.
run bf16_d64        --mode full   --n 16384 --d 64  --heads 8 --threads 1 --baseline none --dtype bf16
run bf16_d128       --mode full   --n 16384 --d 128 --heads 8 --threads 1 --baseline none --dtype bf16
for n in 16384 65536 262144 1048576; do
  run "window_$n" --mode window --window 256 256 --n "$n" --d 64 --heads 8 --threads 1 --baseline none
done
run sparse10_d64    --mode block-sparse --block 256 --density 0.1 --n 16384 --d 64 --heads 8 --threads 1 --baseline none
run full_n65536_t2  --mode full --n 65536 --d 64 --heads 8 --threads 2 --baseline none --repeats 1
run sigmoid_d64     --mode full --n 16384 --d 64 --heads 8 --threads 1 --baseline none --normalizer sigmoid
for n in 4096 16384 65536 262144 1048576; do
  run "linear_$n"        --mode full   --n "$n" --d 64 --heads 8 --threads 1 --baseline none --normalizer linear
  run "linear_causal_$n" --mode causal --n "$n" --d 64 --heads 8 --threads 1 --baseline none --normalizer linear
done
# Positional terms in the kernel (each timed against the same call without them), the layer.
run rope_d64        --mode full --n 16384 --d 64 --heads 8 --threads 1 --baseline none --rope half --repeats 5
run alibi_d64       --mode full --n 16384 --d 64 --heads 8 --threads 1 --baseline none --alibi --repeats 5
run relative_d64    --mode full --n 16384 --d 64 --heads 8 --threads 1 --baseline none --relative-k 64 --repeats 5
run mha             --mode mha --n 16384 --e 512 --heads 8 --threads 1
run mha_rope        --mode mha --n 16384 --e 512 --heads 8 --threads 1 --rope half
run mha_alibi       --mode mha --n 16384 --e 512 --heads 8 --threads 1 --alibi
run mha_gqa_causal  --mode mha --n 16384 --e 512 --heads 8 --kv-heads 2 --threads 1 --rope half --causal
run mha_t2          --mode mha --n 16384 --e 512 --heads 8 --threads 2
run full_n65536_t1  --mode full --n 65536 --d 64 --heads 8 --threads 1 --baseline none --repeats 1
# Decoding: one new token against 65536 keys (memory-bound: the rate k and v are read at).
for t in 1 2; do
  run "decode_h8_kv8_t$t"  --mode causal --n 65536 --nq 1 --d 128 --heads 8 --kv-heads 8 --threads "$t" --repeats 7
  run "decode_h32_kv8_t$t" --mode causal --n 65536 --nq 1 --d 128 --heads 32 --kv-heads 8 --threads "$t" --repeats 7
  run "decode_h64_kv8_t$t" --mode causal --n 65536 --nq 1 --d 128 --heads 64 --kv-heads 8 --threads "$t" --repeats 7
done
# Many short heads (BERT-base's shapes: 32 sequences x 12 heads), against oneDNN.
for t in 1 2; do
  for n in 128 256 512; do
    run "short_n${n}_t$t" --mode full --batch 32 --n "$n" --d 64 --heads 12 --threads "$t" --repeats 5
  done
done
# Ratios the issues set, from runs that alternate (this machine is shared: two runs minutes
# apart can differ by more than the margin a goal leaves), kept as <name>_<round>.json.
interleave() {  # name, rounds, then two argument lists separated by --
  local name=$1 rounds=$2; shift 2
  local -a first=() second=()
  while [ "$1" != "--" ]; do first+=("$1"); shift; done; shift
  second=("$@")
  echo "== interleaved x$rounds: longattn bench ${first[*]}  /  ${second[*]}"
  for r in $(seq "$rounds"); do
    "$cli" bench "${first[@]}" --output "$out/${name}_a_$r.json" > /dev/null
    "$cli" bench "${second[@]}" --output "$out/${name}_b_$r.json" > /dev/null
  done
}
common=(--n 16384 --d 64 --heads 8 --threads 1 --baseline none)
# Full attention at D = 64 and 128 as a series: the median of several runs says more than one
# run on a shared machine. Kept as series_full_d<D>_<round>.json.
series() {  # name, rounds, then the bench arguments
  local name=$1 rounds=$2; shift 2
  echo "== x$rounds: longattn bench $*"
  for r in $(seq "$rounds"); do "$cli" bench "$@" --output "$out/${name}_$r.json" > /dev/null; done
}
series series_full_d64 7 --mode full "${common[@]}" --repeats 3
series series_full_d128 5 --mode full --n 16384 --d 128 --heads 8 --threads 1 --baseline none --repeats 3
interleave window_vs_full 7 --mode window --window 256 256 "${common[@]}" -- --mode full "${common[@]}" --repeats 1
interleave sigmoid_vs_softmax 3 --mode full "${common[@]}" --normalizer sigmoid --repeats 1 -- --mode full "${common[@]}" --repeats 1
# A decoding loop: one AttentionPlan run step after step, alternating in one process with an
# attention() call per step.
run plan_vs_call --mode causal --n 65536 --nq 1 --d 64 --heads 8 --threads 1 --baseline none --repeats 200 --reuse-plan
echo "== micro-kernels"
build/release/bench/longattn_kernel_benchmarks --benchmark_out="$out/kernels.json" --benchmark_out_format=json | sed 's/^/   /'

python3 - "$out" <<'PY'
import json, math, statistics, sys, pathlib
d = pathlib.Path(sys.argv[1])
j = lambda name: json.loads((d / f"{name}.json").read_text())
def slope(names_and_n):
    pts = [(n, j(name)["seconds"]) for name, n in names_and_n]
    xs, ys = [math.log(n) for n, _ in pts], [math.log(t) for _, t in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
full, causal = j("full_d64_nobase"), j("causal_d64")
print(f"window (256, 256) time slope over n = 16K..1M: {slope([(f'window_{n}', n) for n in (16384, 65536, 262144, 1048576)]):.3f}")
for kind in ("linear", "linear_causal"):
    ns = (4096, 16384, 65536, 262144, 1048576)
    print(f"{kind} time slope over n = 4K..1M: {slope([(f'{kind}_{n}', n) for n in ns]):.3f}; "
          f"softmax / {kind} time at n = 65536: {j('full_n65536_t1')['seconds'] / j(f'{kind}_65536')['seconds']:.1f}")
print(f"sigmoid / softmax time at n = 16384: {j('sigmoid_d64')['seconds'] / full['seconds']:.3f}")
print(f"window / full GFLOP/s at n = 16384: {j('window_16384')['gflops'] / full['gflops']:.3f}")
def interleaved(name, rounds, key):
    a = [j(f"{name}_a_{r}")[key] for r in range(1, rounds + 1)]
    b = [j(f"{name}_b_{r}")[key] for r in range(1, rounds + 1)]
    return statistics.median(a), statistics.median(b), statistics.median(x / y for x, y in zip(a, b))
for name, rounds in (("series_full_d64", 7), ("series_full_d128", 5)):
    runs = [j(f"{name}_{r}") for r in range(1, rounds + 1)]
    pct = sorted(x["peak_pct"] for x in runs)
    print(f"{name}: % of each run's peak {', '.join(f'{p:.1f}' for p in pct)}; median {statistics.median(pct):.1f} % "
          f"({statistics.median(x['gflops'] for x in runs):.1f} GFLOP/s)")
w, f, ratio = interleaved("window_vs_full", 7, "gflops")
print(f"window / full GFLOP/s at n = 16384, alternating runs: medians {w:.1f} / {f:.1f}, median of the 7 ratios {ratio:.3f}")
sg, sm, ratio = interleaved("sigmoid_vs_softmax", 3, "seconds")
print(f"sigmoid / softmax time at n = 16384, alternating runs: medians {sg:.3f} / {sm:.3f} s, median ratio {ratio:.3f}")
r = j("plan_vs_call")
print(f"decoding step (1 query, 65536 keys, 8 heads, D = 64), medians of 200 alternated: plan reused "
      f"{r['seconds'] * 1e3:.3f} ms, attention() per step {r['attention_per_call']['seconds'] * 1e3:.3f} ms, "
      f"{r['seconds'] / r['attention_per_call']['seconds']:.3f}x the time")
print(f"causal / full time: {causal['seconds'] / full['seconds']:.3f}")
for d_ in (64, 128):
    r, f = j(f"bf16_d{d_}"), j("full_d64_nobase") if d_ == 64 else j("series_full_d128_1")
    print(f"bf16 inputs, D = {d_} ({r['bf16_products']} products): {r['gflops']:.1f} GFLOP/s, "
          f"{f['seconds'] / r['seconds']:.2f}x the fp32 speed")
print(f"block-sparse 10 % / full time: {j('sparse10_d64')['seconds'] / full['seconds']:.3f}")
for name in ("rope_d64", "alibi_d64", "relative_d64"):
    r = j(name)
    print(f"{name}: {r['seconds'] / r['without_position_terms']['seconds']:.3f}x the time without the terms")
for name in ("mha", "mha_rope", "mha_alibi", "mha_gqa_causal", "mha_t2"):
    r = j(name)
    m = r["memory"]
    plain = f", {r['layer']['seconds'] / r['plain_layer_seconds']:.3f}x the plain layer" if r["plain_layer_seconds"] else ""
    print(f"{name}: layer {r['layer']['seconds']:.3f} s (projections {r['layer']['projection_seconds']:.3f}, "
          f"attention {r['layer']['attention_seconds']:.3f}, output {r['layer']['output_seconds']:.3f}); "
          f"layer / parts alone {r['layer_over_parts']:.3f}{plain}; peak RSS {m['peak_rss_bytes'] / 2**20:.0f} MiB, "
          f"beyond x, y, weights, Q|K|V and the process {m['beyond_qkv_bytes'] / 2**20:.1f} MiB")
for name in ("window_1048576", "full_n65536_t2"):
    r = j(name)
    inputs = 4 * r["heads"] * r["n"] * r["d"] * 4
    print(f"{name}: peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB = inputs {inputs / 2**20:.0f} MiB + {(r['peak_rss_bytes'] - inputs) / 2**20:.0f} MiB")
PY
