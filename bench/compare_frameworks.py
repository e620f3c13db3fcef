#!/usr/bin/env python3
"""longattn against the CPU attention of PyTorch and ONNX Runtime, on this machine, in one run,
all three called in this process on the same arrays.

PyTorch: torch.nn.functional.scaled_dot_product_attention on [B, H, N, D] tensors (its CPU
flash-attention kernel for fp32 and bf16, full and causal). ONNX Runtime: its
com.microsoft.MultiHeadAttention operator on q, k, v (no projections): the MLAS
flash-attention kernel for full attention, a materialized path (Q Kᵀ, softmax, P V) for
causal (unidirectional = 1); fp32 only. longattn: longattn.attention on the NumPy arrays (bf16:
ml_dtypes' bfloat16). Each shape is timed in each (T threads, medians of --repeats runs after
a warm-up), one after another. Decoding shapes (--decode-n) are one query per head against n
keys, all visible. With --kv-heads G < H the query heads share G key-value heads
(grouped-query attention; PyTorch's enable_gqa, ONNX Runtime's MultiHeadAttention has none and
is skipped). With --qk-precision int8 longattn computes q·k on smoothed int8 (README "int8
scores") while the others keep --dtype: a comparison of what each offers, not of one
arithmetic. Before timing, every side computes the same inputs (n = 300) and the outputs are
compared. GFLOP/s count 4·D per visible (query, key) pair (DESIGN.md §4).

Needs the longattn package (`pip install .`), numpy and the frameworks from PyPI (those
missing are skipped); the build and the tests never do. Example:
  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install . ml_dtypes torch onnxruntime onnx
  /tmp/venv/bin/python bench/compare_frameworks.py --n 4096 16384 --threads 1 2
"""
import argparse
import importlib.util
import json
import pathlib
import statistics
import sys
import time

import numpy as np


def median_seconds(run, repeats):
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class PyTorch:
    name = "pytorch"
    dtypes = ("fp32", "bf16")
    grouped = True

    def __init__(self):
        import torch
        self.torch = torch
        self.version = torch.__version__

    def attention(self, q, k, v, causal, threads, dtype):
        """A callable running SDPA on these [B, H, N, D] arrays, and one returning its output."""
        torch = self.torch
        torch.set_num_threads(threads)
        kind = torch.bfloat16 if dtype == "bf16" else torch.float32
        tq, tk, tv = (torch.from_numpy(x).to(kind) for x in (q, k, v))
        gqa = k.shape[1] != q.shape[1]
        run = lambda: torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal, enable_gqa=gqa)
        return run, lambda: run().float().numpy()


class OnnxRuntime:
    name = "onnxruntime"
    dtypes = ("fp32",)
    grouped = False

    def __init__(self):
        import onnxruntime
        self.ort = onnxruntime
        self.version = onnxruntime.__version__

    @staticmethod
    def model(heads, causal):
        """One MultiHeadAttention node: query [B, S, H·D], key, value [B, L, H·D] in, output out."""
        from onnx import TensorProto, helper
        io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", length, "E"])
              for name, length in (("query", "S"), ("key", "L"), ("value", "L"))]
        out = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["B", "S", "E"])
        node = helper.make_node("MultiHeadAttention", ["query", "key", "value"], ["output"],
                                domain="com.microsoft", num_heads=heads, unidirectional=int(causal))
        graph = helper.make_graph([node], "mha", io, [out])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                       helper.make_opsetid("com.microsoft", 1)]).SerializeToString()

    def attention(self, q, k, v, causal, threads, dtype):
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle workers sleep rather than spin, so an inference object done with its runs leaves
        # the cores to the longattn process timed after it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = self.ort.InferenceSession(self.model(q.shape[1], causal), options,
                                          providers=["CPUExecutionProvider"])
        feeds = {"query": bsd(q), "key": bsd(k), "value": bsd(v)}
        run = lambda: model.run(None, feeds)[0]
        b, h, n, d = q.shape
        return run, lambda: run().reshape(b, n, h, d).transpose(0, 2, 1, 3)


def bsd(x):
    """[B, H, N, D] -> [B, N, H·D], the layout MultiHeadAttention reads."""
    b, h, n, d = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3).reshape(b, n, h * d))


class Longattn:
    name = "longattn"

    def __init__(self, qk_precision="inputs"):
        import longattn
        self.longattn = longattn
        self.qk_precision = qk_precision
        self.version = f"{longattn.__version__} ({longattn.isa()}, q·k {qk_precision})"

    def attention(self, q, k, v, causal, threads, dtype):
        if dtype == "bf16":
            import ml_dtypes
            q, k, v = (x.astype(ml_dtypes.bfloat16) for x in (q, k, v))
        out = np.empty((*q.shape[:3], v.shape[3]), dtype=np.float32)
        run = lambda: self.longattn.attention(q, k, v, causal=causal, threads=threads, out=out,
                                              qk_precision=self.qk_precision)
        return run, run


def flops(heads, nq, n, d, causal):
    """DESIGN.md §4: 2·(D + Dv) per visible pair; causal aligned bottom-right (nq = n here)."""
    pairs = nq * (n - nq) + nq * (nq + 1) // 2 if causal else nq * n
    return 4.0 * d * heads * pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", nargs="+", default=["pytorch", "onnxruntime"])
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: q, k, v rounded to bf16 for every side (frameworks without bf16 skipped)")
    parser.add_argument("--n", type=int, nargs="*", default=[4096, 16384])
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, help="key-value heads (default: --heads)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--causal-n", type=int, nargs="*", default=[4096])
    parser.add_argument("--decode-n", type=int, nargs="*", default=[65536],
                        help="decoding shapes: one query per head against this many keys")
    parser.add_argument("--qk-precision", choices=["inputs", "int8"], default="inputs",
                        help="int8: longattn's int8 scores against the others' --dtype")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=pathlib.Path, help="also write the rows as JSON here")
    a = parser.parse_args()
    kv_heads = a.kv_heads or a.heads

    known = {"pytorch": (PyTorch, "torch"), "onnxruntime": (OnnxRuntime, "onnxruntime")}
    frameworks = []
    for name in a.frameworks:
        cls, module = known[name]
        missing = ("not installed" if importlib.util.find_spec(module) is None
                   else f"no {a.dtype}" if a.dtype not in cls.dtypes
                   else "no grouped-query heads" if kv_heads != a.heads and not cls.grouped else "")
        if missing:
            print(f"{name}: skipped ({missing})")
            continue
        frameworks.append(cls())
    ours = Longattn(a.qk_precision)
    print(f"longattn {ours.version}; " + ", ".join(f"{f.name} {f.version}" for f in frameworks) + f"; {a.dtype}")

    rng = np.random.default_rng(7)
    q = rng.standard_normal((1, a.heads, 300, a.d), dtype=np.float32)
    k, v = (rng.standard_normal((1, kv_heads, 300, a.d), dtype=np.float32) for _ in range(2))
    if a.dtype == "bf16":  # values bf16 holds exactly: every side rounds them to the same bf16
        q, k, v = ((x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32) for x in (q, k, v))
    for causal in (False, True):
        expected = ours.attention(q, k, v, causal, 1, a.dtype)[1]()
        for f in frameworks:
            error = float(np.max(np.abs(expected - f.attention(q, k, v, causal, 1, a.dtype)[1]())))
            print(f"cross-check ({'causal' if causal else 'full'}, n = 300, H = {a.heads}/{kv_heads}, D = {a.d}): "
                  f"max |longattn - {f.name}| = {error:.2e}")
            if error > (5e-2 if a.dtype == "bf16" or a.qk_precision == "int8" else 1e-4):
                sys.exit("they disagree: the timings would not compare the same computation")

    rows = []
    print(f"{'mode':6} {'nq':>6} {'n':>6} {'T':>2} {'longattn s':>11} {'GFLOP/s':>8}" +
          "".join(f" {f.name + ' s':>14} {'speedup':>8}" for f in frameworks))
    shapes = [(False, n, n) for n in a.n] + [(True, n, n) for n in a.causal_n] + [(False, 1, n) for n in a.decode_n]
    for causal, nq, n in shapes:
        rng = np.random.default_rng(n)
        q = rng.standard_normal((1, a.heads, nq, a.d), dtype=np.float32)
        k, v = (rng.standard_normal((1, kv_heads, n, a.d), dtype=np.float32) for _ in range(2))
        work = flops(a.heads, nq, n, a.d, causal)
        for threads in a.threads:
            seconds = median_seconds(ours.attention(q, k, v, causal, threads, a.dtype)[0], a.repeats)
            row = {"mode": "causal" if causal else "full", "nq": nq, "n": n, "d": a.d, "heads": a.heads,
                   "kv_heads": kv_heads, "threads": threads, "dtype": a.dtype, "qk_precision": a.qk_precision,
                   "isa": ours.longattn.isa(),
                   "flops": work, "longattn_seconds": seconds, "longattn_gflops": work / seconds * 1e-9}
            line = f"{row['mode']:6} {nq:>6} {n:>6} {threads:>2} {seconds:>11.4f} {row['longattn_gflops']:>8.1f}"
            for f in frameworks:
                run, _ = f.attention(q, k, v, causal, threads, a.dtype)
                theirs = median_seconds(run, a.repeats)
                row[f.name + "_seconds"] = theirs
                row[f.name + "_gflops"] = work / theirs * 1e-9
                row[f.name + "_speedup"] = theirs / seconds
                line += f" {theirs:>14.4f} {theirs / seconds:>7.2f}x"
            rows.append(row)
            print(line, flush=True)
    if a.json:
        a.json.write_text(json.dumps({"frameworks": {f.name: f.version for f in frameworks}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
