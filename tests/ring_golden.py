#!/usr/bin/env python3
"""The golden cases a ring can run (self-attention: Nq = Nk; no mask or additive scores)
through `mpirun -np 3 longattn run --ring`, fp32 in both layouts and bf16, each against its
expected files under the golden README's tolerance.
Usage: ring_golden.py MPIEXEC LONGATTN GOLDEN_DIR"""

import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

mpiexec, cli, golden = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])


def ring_flags(folder, case, files):
    """The flags of `longattn run` that say what the case computes."""
    args = ["--window", *map(str, case.get("window", [-1, -1])), "--normalizer", case.get("normalizer", "softmax")]
    for key, flag in (("scale", "--scale"), ("sigmoid_bias", "--sigmoid-bias"), ("rope_pairing", "--rope"),
                      ("rope_base", "--rope-base"), ("softcap", "--softcap")):
        if key in case:
            args += [flag, str(case[key])]
    if case.get("alibi"):
        args.append("--alibi")
    if "key_lengths.npy" in files:
        args += ["--key-lengths", str(folder / "key_lengths.npy")]
    if "rel_table.npy" in files:
        args += ["--relative-bias", str(folder / "rel_table.npy")]
    return args


def run_ring(folder, case, files, tmp, layout, dtype):
    """The ring's output of the case in BHND, the inputs given in `layout` and `dtype`."""
    names = {}
    for name in ("q", "k", "v"):
        array = np.load(folder / f"{name}.npy")
        names[name] = tmp / f"{name}.npy"
        np.save(names[name], array.transpose(0, 2, 1, 3) if layout == "bnhd" else array)
    out = tmp / "out.npy"
    subprocess.run([mpiexec, "-np", "3", "--oversubscribe", cli, "run", "--ring", "--q", str(names["q"]),
                    "--k", str(names["k"]), "--v", str(names["v"]), "--out", str(out), "--layout", layout,
                    "--dtype", dtype, *ring_flags(folder, case, files)], check=True, capture_output=True)
    result = np.load(out)
    return result.transpose(0, 2, 1, 3) if layout == "bnhd" else result


ran = failed = 0
for folder in sorted(p for p in golden.iterdir() if p.is_dir()):
    case = json.loads((folder / "case.json").read_text())
    files = set(case.get("files", []))
    # Masks, sinks, sink keys and packed sequences are not split across ranks.
    if case.get("op") != "attention" or files & {"mask.npy", "additive_w.npy", "sinks.npy", "cu_seqlens_q.npy"} \
            or "sink_keys" in case:
        continue
    q, k, v = np.load(folder / "q.npy"), np.load(folder / "k.npy"), np.load(folder / "v.npy")
    if q.shape[2] != k.shape[2]:
        continue
    expected = np.load(folder / "expected_out.npy")
    scale = case.get("scale") or 1 / np.sqrt(q.shape[3])
    logits = np.abs(np.einsum("bhid,bgjd->bhgij", q.astype(np.float64), k.astype(np.float64))).max() * scale
    # fp32 as given in BHND; BNHD files; bf16 rows (the README's bf16 tolerance, scores rounded too).
    for layout, dtype, rel, score_rel in (("bhnd", "fp32", 1e-5, 1e-6), ("bnhd", "fp32", 1e-5, 1e-6),
                                          ("bhnd", "bf16", 2e-2, 2.0**-7)):
        with tempfile.TemporaryDirectory() as tmp:
            error = np.abs(run_ring(folder, case, files, pathlib.Path(tmp), layout, dtype) - expected).max()
        bound = rel * max(1.0, np.abs(expected).max()) + score_rel * logits * np.abs(v).max()
        ran += 1
        if not error <= bound:
            failed += 1
            print(f"FAIL {folder.name} ({layout}, {dtype}): error {error:.3g} over {bound:.3g}")
        else:
            print(f"pass {folder.name} ({layout}, {dtype}): error {error:.3g}")
print(f"{ran} golden runs through mpirun -np 3 longattn run --ring, {failed} failed")
sys.exit(1 if failed or ran == 0 else 0)
