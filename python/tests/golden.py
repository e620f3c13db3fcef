"""The project's golden attention cases (tests/golden) through longattn.attention, from arrays
of any kind: each case's inputs converted by the caller, its outputs checked in NumPy."""

import json
import pathlib

import numpy as np
import pytest

import longattn

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden"
KNOWN_KEYS = {"files", "layout", "op", "window", "scale", "normalizer", "sigmoid_bias", "alibi", "rope_pairing",
              "rope_base", "softcap", "sink_keys"}
KNOWN_FILES = {"q.npy", "k.npy", "v.npy", "key_lengths.npy", "mask.npy", "rel_table.npy", "additive_wq.npy",
               "additive_wk.npy", "additive_w.npy", "sinks.npy", "cu_seqlens_q.npy", "cu_seqlens_k.npy",
               "expected_out.npy", "expected_lse.npy"}


def attention_cases():
    for folder in sorted(p for p in GOLDEN.iterdir() if p.is_dir()):
        case = json.loads((folder / "case.json").read_text())
        if case.get("op") == "attention":
            yield pytest.param(folder, case, id=folder.name)


def tolerance(expected, q, k, v, scale, rel):
    """tests/golden/README.md's bound: rel · max(1, max |expected|) + 1e-6 · max |logit| · max |v|."""
    logits = np.einsum("bhid,bgjd->bhgij", q.astype(np.float64), k.astype(np.float64)) * scale
    return rel * max(1.0, np.abs(expected).max(initial=0)) + 1e-6 * np.abs(logits).max(initial=0) * np.abs(v).max(initial=0)


def as_numpy(x):
    return x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else x


def check_case(folder, case, convert):
    """Runs the case on its inputs as convert(array) makes them (NumPy, torch, ...) and checks
    out (and lse) against the fp64 expectations within the fp32 tolerance."""
    unknown = (set(case) - KNOWN_KEYS) | (set(case["files"]) - KNOWN_FILES)
    if unknown:
        pytest.skip(f"not through the Python options: {sorted(unknown)}")
    a = {name[:-4]: np.load(folder / name) for name in case["files"]}
    q, k, v = a["q"], a["k"], a["v"]
    kwargs = dict(window=tuple(case.get("window", [-1, -1])), normalizer=case.get("normalizer", "softmax"),
                  scale=case.get("scale"), alibi=case.get("alibi", False), sigmoid_bias=case.get("sigmoid_bias"))
    if "rope_pairing" in case:
        kwargs.update(rope=case["rope_pairing"], rope_base=case.get("rope_base", 10000.0))
    for file, option in (("key_lengths", "key_lengths"), ("mask", "mask"), ("rel_table", "relative_bias")):
        if file in a:
            kwargs[option] = convert(a[file])
    kwargs.update(softcap=case.get("softcap"), sink_keys=case.get("sink_keys", 0))
    if "sinks" in a:
        kwargs["sinks"] = convert(a["sinks"])
    if "cu_seqlens_q" in a:
        kwargs["cu_seqlens"] = (convert(a["cu_seqlens_q"]), convert(a["cu_seqlens_k"]))
    if "additive_w" in a:
        kwargs["additive"] = tuple(convert(a[name]) for name in ("additive_wq", "additive_wk", "additive_w"))
    softmax = kwargs["normalizer"] == "softmax"
    result = longattn.attention(convert(q), convert(k), convert(v), return_lse=softmax, **kwargs)
    out, lse = (as_numpy(x) for x in result) if softmax else (as_numpy(result), None)
    assert type(result[0] if softmax else result) is type(convert(q))  # the kind of object given
    scale = case.get("scale") or 1.0 / np.sqrt(q.shape[3])
    assert np.abs(out - a["expected_out"]).max(initial=0) <= tolerance(a["expected_out"], q, k, v, scale, 1e-5)
    if lse is not None:
        expected = a["expected_lse"]
        finite = np.isfinite(expected)
        assert np.array_equal(np.isfinite(lse), finite)
        assert np.abs(lse[finite] - expected[finite]).max(initial=0) <= tolerance(expected[finite], q, k, v, scale, 1e-5)
