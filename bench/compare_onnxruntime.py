#!/usr/bin/env python3
"""longattn against ONNX Runtime's CPU attention, on this machine, in one run.

ONNX Runtime's com.microsoft MultiHeadAttention operator (q, k, v given, no projections)
runs its CPU flash-attention kernel (MLAS) for full attention without masks, and a
materialized path (Q Kᵀ, softmax, P V) for causal attention (unidirectional = 1). Each shape
is timed there (an InferenceSession with intra_op_num_threads = T, medians of --repeats
runs after a warm-up) and by `longattn bench --baseline none --json` (the same shape on
random inputs, its own medians); processes and sessions alternate by shape. Decoding shapes
(--decode-n) are one query per head against n keys, all visible. Before timing,
`longattn run` and ONNX Runtime compute the same inputs at a small size and their outputs
are compared.

Needs onnxruntime, onnx and numpy (PyPI); the build and the tests never do. Example:
  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install onnxruntime onnx numpy
  /tmp/venv/bin/python bench/compare_onnxruntime.py --n 4096 16384 --threads 1 2
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

ROOT = pathlib.Path(__file__).resolve().parent.parent


def mha_model(heads, causal):
    """One MultiHeadAttention node: query [B, S, H·D], key, value [B, L, H·D] in, output out."""
    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", length, "E"])
          for name, length in (("query", "S"), ("key", "L"), ("value", "L"))]
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["B", "S", "E"])
    node = helper.make_node("MultiHeadAttention", ["query", "key", "value"], ["output"],
                            domain="com.microsoft", num_heads=heads, unidirectional=int(causal))
    graph = helper.make_graph([node], "mha", io, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    return model.SerializeToString()


def session(heads, causal, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle workers sleep rather than spin, so a session done with its runs leaves the cores to
    # the longattn process timed after it.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(mha_model(heads, causal), options, providers=["CPUExecutionProvider"])


def bsd(x):
    """[B, H, N, D] -> [B, N, H·D], the layout MultiHeadAttention reads."""
    b, h, n, d = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3).reshape(b, n, h * d))


def ort_seconds(sess, q, k, v, repeats):
    feeds = {"query": bsd(q), "key": bsd(k), "value": bsd(v)}
    sess.run(None, feeds)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def longattn_bench(binary, n, nq, d, heads, threads, causal, repeats):
    args = [str(binary), "bench", "--mode", "causal" if causal else "full", "--n", str(n), "--nq", str(nq),
            "--d", str(d), "--heads", str(heads), "--threads", str(threads), "--baseline", "none",
            "--repeats", str(repeats), "--json"]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


def cross_check(binary, heads, d, causal):
    """Max |longattn - ONNX Runtime| on one random input of n = 300 (B = 1)."""
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((1, heads, 300, d), dtype=np.float32) for _ in range(3))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: pathlib.Path(tmp) / f"{name}.npy" for name in ("q", "k", "v", "out")}
        for name, x in (("q", q), ("k", k), ("v", v)):
            np.save(paths[name], x)
        args = [str(binary), "run", "--q", str(paths["q"]), "--k", str(paths["k"]), "--v", str(paths["v"]),
                "--out", str(paths["out"])] + (["--causal"] if causal else [])
        subprocess.run(args, check=True, capture_output=True)
        ours = bsd(np.load(paths["out"]))
    theirs = session(heads, causal, 1).run(None, {"query": bsd(q), "key": bsd(k), "value": bsd(v)})[0]
    return float(np.max(np.abs(ours - theirs)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--causal-n", type=int, nargs="*", default=[4096],
                        help="causal shapes (ONNX Runtime materializes the n x n scores: keep n small)")
    parser.add_argument("--decode-n", type=int, nargs="*", default=[65536],
                        help="decoding shapes: one query per head against this many keys")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--longattn", type=pathlib.Path, default=ROOT / "build/release/tools/longattn")
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows as JSON here")
    a = parser.parse_args()

    print(f"onnxruntime {ort.__version__}, longattn {a.longattn}")
    for causal in (False, True):
        error = cross_check(a.longattn, a.heads, a.d, causal)
        print(f"cross-check ({'causal' if causal else 'full'}, n = 300, H = {a.heads}, D = {a.d}): "
              f"max |longattn - onnxruntime| = {error:.2e}")
        if error > 1e-4:
            sys.exit("the two disagree: timings would not compare the same computation")

    rows = []
    print(f"{'mode':6} {'nq':>6} {'n':>6} {'T':>2} {'onnxruntime s':>14} {'GFLOP/s':>8} {'longattn s':>11} "
          f"{'GFLOP/s':>8} {'speedup':>8}")
    shapes = [(False, n, n) for n in a.n] + [(True, n, n) for n in a.causal_n] + [(False, 1, n) for n in a.decode_n]
    for causal, nq, n in shapes:
        rng = np.random.default_rng(n)
        q = rng.standard_normal((1, a.heads, nq, a.d), dtype=np.float32)
        k, v = (rng.standard_normal((1, a.heads, n, a.d), dtype=np.float32) for _ in range(2))
        for threads in a.threads:
            ours = longattn_bench(a.longattn, n, nq, a.d, a.heads, threads, causal, a.repeats)
            theirs = ort_seconds(session(a.heads, causal, threads), q, k, v, a.repeats)
            flops = ours["flops"]
            row = {"mode": "causal" if causal else "full", "nq": nq, "n": n, "d": a.d, "heads": a.heads,
                   "threads": threads,
                   "onnxruntime_seconds": theirs, "onnxruntime_gflops": flops / theirs * 1e-9,
                   "longattn_seconds": ours["seconds"], "longattn_gflops": ours["gflops"],
                   "speedup": theirs / ours["seconds"], "isa": ours["isa"], "peak_gflops": ours["peak_gflops"]}
            rows.append(row)
            print(f"{row['mode']:6} {nq:>6} {n:>6} {threads:>2} {theirs:>14.4f} {row['onnxruntime_gflops']:>8.1f} "
                  f"{ours['seconds']:>11.4f} {ours['gflops']:>8.1f} {row['speedup']:>7.2f}x", flush=True)
    if a.json:
        a.json.write_text(json.dumps({"onnxruntime": ort.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
