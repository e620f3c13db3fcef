#!/usr/bin/env python3
"""What a call through Python adds to the engine's own time: one decoding step (1 query per
head against nk keys) through longattn.AttentionPlan.run on NumPy arrays, against the same plan
run timed in C++ (the module's _run_seconds), alternating in rounds; medians, microseconds.
Also longattn.attention (validation and planning included), the torch drop-in, and the same
keys in a longattn.KvCache (fp32, pages of 256 tokens) decoded by KvCache.attention.

  python3 bench/python_overhead.py [--nk 16 256 4096] [--rounds 20] [--calls 200]
"""
import argparse
import statistics
import time

import numpy as np

import longattn


def python_seconds(call, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nk", type=int, nargs="+", default=[16, 256, 4096])
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200)
    a = parser.parse_args()
    try:
        import torch
        import longattn.torch as lt
        torch.set_num_threads(a.threads)
    except ImportError:
        torch = None
    print(f"isa {longattn.isa()}, {a.threads} thread(s); Hq = {a.heads}, Hkv = {a.kv_heads}, D = {a.d}, 1 query; "
          f"medians over {a.rounds} rounds of {a.calls} calls, microseconds")
    print(f"{'nk':>6} {'C++ run':>9} {'plan.run':>9} {'overhead':>9} {'attention()':>12} {'overhead':>9}"
          f" {'KvCache':>9} {'overhead':>9}" + (f" {'torch sdpa':>11} {'overhead':>9}" if torch else ""))
    rng = np.random.default_rng(0)
    for nk in a.nk:
        q = rng.standard_normal((1, a.heads, 1, a.d), dtype=np.float32)
        k, v = (rng.standard_normal((1, a.kv_heads, nk, a.d), dtype=np.float32) for _ in range(2))
        out = np.empty_like(q)
        plan = longattn.AttentionPlan(batch=1, q_heads=a.heads, kv_heads=a.kv_heads, nq=1, nk=nk, d=a.d,
                                      threads=a.threads)
        cache = longattn.KvCache(kv_heads=a.kv_heads, d=a.d, page_tokens=256)
        sequence = cache.add_sequence()
        cache.append(sequence, k, v)
        rows = {"cpp": [], "plan": [], "attention": [], "cache": [], "torch": []}
        if torch:
            tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
        for _ in range(a.rounds):  # alternated, so drift in the machine's speed reaches every column alike
            rows["cpp"].append(statistics.median(plan._plan._run_seconds(q, k, v, out, a.calls)))
            rows["plan"].append(python_seconds(lambda: plan.run(q, k, v, out=out), a.calls))
            rows["attention"].append(python_seconds(
                lambda: longattn.attention(q, k, v, out=out, threads=a.threads), a.calls))
            rows["cache"].append(python_seconds(
                lambda: cache.attention(q, sequences=[sequence], out=out, threads=a.threads), a.calls))
            if torch:
                rows["torch"].append(python_seconds(lambda: lt.scaled_dot_product_attention(tq, tk, tv, enable_gqa=True),
                                                    a.calls))
        us = {name: statistics.median(x) * 1e6 for name, x in rows.items() if x}
        line = (f"{nk:>6} {us['cpp']:>9.2f} {us['plan']:>9.2f} {us['plan'] - us['cpp']:>9.2f} "
                f"{us['attention']:>12.2f} {us['attention'] - us['cpp']:>9.2f} "
                f"{us['cache']:>9.2f} {us['cache'] - us['cpp']:>9.2f}")
        if torch:
            line += f" {us['torch']:>11.2f} {us['torch'] - us['cpp']:>9.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
