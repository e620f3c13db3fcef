"""longattn.attention from NumPy: the golden cases, zero copy, strided views, bf16, the GIL,
plans and bad arguments. (Torch interop: test_torch.py, skipped without torch.)"""

import json
import pathlib
import threading

import numpy as np
import pytest

import longattn

GOLDEN = pathlib.Path(__file__).resolve().parents[2] / "tests" / "golden"
KNOWN_KEYS = {"files", "layout", "op", "window", "scale", "normalizer", "sigmoid_bias", "alibi", "rope_pairing",
              "rope_base"}
KNOWN_FILES = {"q.npy", "k.npy", "v.npy", "key_lengths.npy", "mask.npy", "rel_table.npy", "expected_out.npy",
               "expected_lse.npy"}


def attention_cases():
    for folder in sorted(p for p in GOLDEN.iterdir() if p.is_dir()):
        case = json.loads((folder / "case.json").read_text())
        if case.get("op") == "attention":
            yield pytest.param(folder, case, id=folder.name)


def tolerance(expected, q, k, v, scale, rel):
    logits = np.einsum("bhid,bgjd->bhgij", q.astype(np.float64), k.astype(np.float64)) * scale
    return rel * max(1.0, np.abs(expected).max(initial=0)) + 1e-6 * np.abs(logits).max(initial=0) * np.abs(v).max(initial=0)


@pytest.mark.parametrize("folder,case", list(attention_cases()))
def test_golden_case(folder, case):
    unknown = (set(case) - KNOWN_KEYS) | (set(case["files"]) - KNOWN_FILES)
    if unknown:
        pytest.skip(f"not through the Python options: {sorted(unknown)}")
    a = {name[:-4]: np.load(folder / name) for name in case["files"]}
    q, k, v = a["q"], a["k"], a["v"]
    kwargs = dict(window=tuple(case.get("window", [-1, -1])), normalizer=case.get("normalizer", "softmax"),
                  scale=case.get("scale"), alibi=case.get("alibi", False), sigmoid_bias=case.get("sigmoid_bias"))
    if "rope_pairing" in case:
        kwargs.update(rope=case["rope_pairing"], rope_base=case.get("rope_base", 10000.0))
    if "key_lengths" in a:
        kwargs["key_lengths"] = a["key_lengths"]
    if "mask" in a:
        kwargs["mask"] = a["mask"]
    if "rel_table" in a:
        kwargs["relative_bias"] = a["rel_table"]
    softmax = kwargs["normalizer"] == "softmax"
    result = longattn.attention(q, k, v, return_lse=softmax, **kwargs)
    out, lse = result if softmax else (result, None)
    scale = case.get("scale") or 1.0 / np.sqrt(q.shape[3])
    bound = tolerance(a["expected_out"], q, k, v, scale, 1e-5)
    assert np.abs(out - a["expected_out"]).max(initial=0) <= bound
    if lse is not None:
        expected = a["expected_lse"]
        finite = np.isfinite(expected)
        assert np.array_equal(np.isfinite(lse), finite)
        assert np.abs(lse[finite] - expected[finite]).max(initial=0) <= tolerance(expected[finite], q, k, v, scale, 1e-5)


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def reference(q, k, v, causal=False):
    s = np.einsum("bhid,bhjd->bhij", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(q.shape[3])
    if causal:
        nq, nk = s.shape[2], s.shape[3]
        s = np.where(np.arange(nk)[None, :] <= np.arange(nq)[:, None] + nk - nq, s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v.astype(np.float64)


def test_out_is_written_in_place_and_inputs_are_read_where_they_lie():
    big = random(1, 2, 130, 48)
    q, k, v = big[:, :, :100, :32], big[:, :, 1:, 8:40], big[:, :, 2:102, 16:48]  # strided views
    assert not q.flags.c_contiguous
    out = np.full((1, 2, 100, 32), np.nan, dtype=np.float32)
    address = out.ctypes.data
    result = longattn.attention(q, k[:, :, :100], v, causal=True, out=out)
    assert result is out and out.ctypes.data == address
    assert np.abs(out - reference(q, k[:, :, :100], v, causal=True)).max() < 1e-5


def test_bnhd_layout_and_grouped_heads():
    q, k, v = random(2, 50, 8, 16, seed=1), random(2, 50, 2, 16, seed=2), random(2, 50, 2, 16, seed=3)
    out = longattn.attention(q, k, v, layout="bnhd")
    assert out.shape == (2, 50, 8, 16)
    expected = reference(q.swapaxes(1, 2), np.repeat(k.swapaxes(1, 2), 4, axis=1), np.repeat(v.swapaxes(1, 2), 4, axis=1))
    assert np.abs(out.swapaxes(1, 2) - expected).max() < 1e-5


def test_bfloat16_from_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    q, k, v = (random(1, 2, 64, 32, seed=s).astype(ml_dtypes.bfloat16) for s in (4, 5, 6))
    out = longattn.attention(q, k, v, causal=True)
    expected = reference(*(x.astype(np.float32) for x in (q, k, v)), causal=True)
    assert out.dtype == np.float32 and np.abs(out - expected).max() < 2e-2 * max(1.0, np.abs(expected).max())
    # fp32 queries against a bf16 key-value cache
    out = longattn.attention(q.astype(np.float32), k, v, causal=True)
    assert np.abs(out - expected).max() < 1e-5 * max(1.0, np.abs(expected).max()) + 1e-6


def test_a_plan_runs_many_times():
    plan = longattn.AttentionPlan(batch=1, q_heads=4, kv_heads=2, nq=1, nk=300, d=64, causal=True)
    for seed in range(3):
        q, k, v = random(1, 4, 1, 64, seed=seed), random(1, 2, 300, 64, seed=seed + 10), random(1, 2, 300, 64, seed=seed + 20)
        expected = reference(q, np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1), causal=True)
        assert np.abs(plan.run(q, k, v) - expected).max() < 1e-5
    with pytest.raises(TypeError, match="out: expected float32"):  # checked as attention() checks it
        plan.run(q, k, v, out=np.zeros((1, 4, 1, 64)))
    with pytest.raises(longattn.Error, match="tokens"):
        plan.run(random(1, 4, 2, 64), random(1, 2, 300, 64), random(1, 2, 300, 64))


def test_bad_arguments_raise_and_write_nothing():
    q, k, v = random(1, 2, 8, 16), random(1, 2, 8, 16), random(1, 2, 8, 16)
    out = np.full((1, 2, 8, 16), 7.0, dtype=np.float32)
    with pytest.raises(ValueError, match=r"k.shape\[3\] \(features\): expected 16"):
        longattn.attention(q, k[..., :3], v, out=out)
    with pytest.raises(TypeError, match="float32 or bfloat16"):
        longattn.attention(q.astype(np.float64), k, v, out=out)
    with pytest.raises(ValueError, match="key_lengths"):
        longattn.attention(q, k, v, key_lengths=[9], out=out)
    with pytest.raises(longattn.Error, match="window"):
        longattn.attention(q, k, v, window=(-5, 0), out=out)
    assert (out == 7.0).all()
    assert issubclass(longattn.Error, ValueError)


def test_the_gil_is_released_while_the_engine_runs():
    q = random(1, 8, 2048, 64)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (longattn.attention(q, q, q, threads=1), done.set()))
    counted = 0
    worker.start()
    while not done.is_set():  # runs only while the engine, in the other thread, lets go of the GIL
        counted += 1
    worker.join()
    assert counted > 1000
