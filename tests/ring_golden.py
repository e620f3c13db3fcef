#!/usr/bin/env python3
"""The golden cases a ring can run (self-attention: Nq = Nk; no mask, additive scores or
linear attention) through `mpirun -np 3 longattn run --ring`, each against its expected
files under the golden README's tolerance. Usage: ring_golden.py MPIEXEC LONGATTN GOLDEN_DIR"""

import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

mpiexec, cli, golden = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
ran = failed = 0
for folder in sorted(p for p in golden.iterdir() if p.is_dir()):
    case = json.loads((folder / "case.json").read_text())
    files = set(case.get("files", []))
    if case.get("op") != "attention" or files & {"mask.npy", "additive_w.npy"} or case.get("normalizer") == "linear":
        continue
    q, k = np.load(folder / "q.npy"), np.load(folder / "k.npy")
    if q.shape[2] != k.shape[2]:
        continue
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "out.npy"
        args = [mpiexec, "-np", "3", "--oversubscribe", cli, "run", "--ring", "--q", str(folder / "q.npy"),
                "--k", str(folder / "k.npy"), "--v", str(folder / "v.npy"), "--out", str(out),
                "--window", *map(str, case.get("window", [-1, -1])), "--normalizer", case.get("normalizer", "softmax")]
        for key, flag in (("scale", "--scale"), ("sigmoid_bias", "--sigmoid-bias"), ("rope_pairing", "--rope"),
                          ("rope_base", "--rope-base")):
            if key in case:
                args += [flag, str(case[key])]
        if case.get("alibi"):
            args.append("--alibi")
        if "key_lengths.npy" in files:
            args += ["--key-lengths", str(folder / "key_lengths.npy")]
        if "rel_table.npy" in files:
            args += ["--relative-bias", str(folder / "rel_table.npy")]
        subprocess.run(args, check=True, capture_output=True)
        expected = np.load(folder / "expected_out.npy")
        v = np.load(folder / "v.npy")
        scale = case.get("scale") or 1 / np.sqrt(q.shape[3])
        logits = np.abs(np.einsum("bhid,bgjd->bhgij", q.astype(np.float64), k.astype(np.float64))).max() * scale
        bound = 1e-5 * max(1.0, np.abs(expected).max()) + 1e-6 * logits * np.abs(v).max()
        error = np.abs(np.load(out) - expected).max()
        ran += 1
        if not error <= bound:
            failed += 1
            print(f"FAIL {folder.name}: error {error:.3g} over {bound:.3g}")
        else:
            print(f"pass {folder.name}: error {error:.3g}")
print(f"{ran} golden cases through mpirun -np 3 longattn run --ring, {failed} failed")
sys.exit(1 if failed or ran == 0 else 0)
