"""longattn.attention from NumPy: the golden cases, zero copy, strided views, bf16, the GIL,
plans and bad arguments. (Torch interop: test_torch.py, skipped without torch.)"""

import subprocess
import sys
import threading

import numpy as np
import pytest

import golden
import longattn

@pytest.mark.parametrize("folder,case", list(golden.attention_cases()))
def test_golden_case(folder, case):
    golden.check_case(folder, case, lambda x: x)


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


def test_int8_scores_where_the_cpu_has_vnni():
    q, k, v = random(1, 2, 300, 64, seed=1), random(1, 2, 300, 64, seed=2), random(1, 2, 300, 64, seed=3)
    try:
        out = longattn.attention(q, k, v, causal=True, qk_precision="int8")
    except longattn.Error as e:
        assert "AVX512-VNNI" in str(e)
        return
    expected = reference(q, k, v, causal=True)
    cosine = (out * expected).sum() / np.sqrt((out * out).sum() * (expected * expected).sum())
    assert cosine >= 0.9995 and np.abs(out - expected).max() < 2e-2 * np.abs(expected).max() + 1e-2


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


def test_score_bias_and_block_sparse_from_numpy():
    q, k, v = random(2, 4, 40, 16, seed=7), random(2, 2, 60, 16, seed=8), random(2, 2, 60, 16, seed=9)
    bias = random(4, 40, 60, seed=10)
    out = longattn.attention(q, k, v, score_bias=np.broadcast_to(bias, (2, 4, 40, 60)))  # stride 0 over batch
    kk, vv = np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1)
    s = np.einsum("bhid,bhjd->bhij", q.astype(np.float64), kk) / 4 + bias
    p = np.exp(s - s.max(-1, keepdims=True))
    assert np.abs(out - (p / p.sum(-1, keepdims=True)) @ vv).max() < 1e-5
    visible = [(0, 0), (1, 1), (2, 0)]  # (query block, key block) of 16 x 32
    out = longattn.attention(q, k, v, block_sparse=(16, 32, visible))
    seen = np.zeros((40, 60), dtype=bool)
    for qb, kb in visible:
        seen[qb * 16:(qb + 1) * 16, kb * 32:(kb + 1) * 32] = True
    s = np.where(seen, np.einsum("bhid,bhjd->bhij", q.astype(np.float64), kk) / 4, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    assert np.abs(out - (p / p.sum(-1, keepdims=True)) @ vv).max() < 1e-5
    with pytest.raises(ValueError, match="score_bias: expected 4 dimensions, got 3"):
        longattn.attention(q, k, v, score_bias=bias)
    with pytest.raises(longattn.Error, match=r"score_bias.shape: expected \[2, 4, 40, 60\]"):
        longattn.attention(q, k, v, score_bias=bias[None])


def test_the_layer_from_numpy_weights():
    rng = np.random.default_rng(11)
    e, heads = 32, 4
    w = {name: rng.standard_normal(shape, dtype=np.float32) * 0.2
         for name, shape in (("in_proj_weight", (3 * e, e)), ("wo", (e, e)), ("bo", (e,)))}
    layer = longattn.MultiHeadSelfAttention(embed_dim=e, heads=heads, weights=w, causal=True)
    x = random(2, 9, e, seed=12)
    qkv = x @ w["in_proj_weight"].T
    q, k, v = (t.reshape(2, 9, heads, e // heads).swapaxes(1, 2) for t in np.split(qkv, 3, axis=-1))
    o = reference(q, k, v, causal=True).swapaxes(1, 2).reshape(2, 9, e)
    assert np.abs(layer(x) - (o @ w["wo"].T + w["bo"])).max() < 1e-5
    expected = o @ w["wo"].T + w["bo"]
    half = longattn.MultiHeadSelfAttention(embed_dim=e, heads=heads, weights=w, causal=True, precision="bf16")
    assert np.abs(half(x) - expected).max() < 2e-2 * max(1.0, np.abs(expected).max())  # the bf16 tolerance
    with pytest.raises(longattn.Error, match="precision"):
        longattn.MultiHeadSelfAttention(embed_dim=e, heads=heads, weights=w, precision="fp16")
    with pytest.raises(TypeError, match="unknown names"):
        longattn.MultiHeadSelfAttention(embed_dim=e, heads=heads, weights={"w_q": w["wo"]})
    with pytest.raises(TypeError, match=r"weights\['wo'\]: expected float32"):
        longattn.MultiHeadSelfAttention(embed_dim=e, heads=heads, weights={**w, "wo": w["wo"].astype(np.float64)})


def test_python_m_longattn_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "longattn", "selftest", "--cases", "3", "--seed", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "3 case(s), 0 failed" in result.stdout


def test_read_only_inputs_memory_mapped_and_broadcast(tmp_path):
    q = random(1, 2, 30, 16, seed=13)
    np.save(tmp_path / "q.npy", q)
    mapped = np.load(tmp_path / "q.npy", mmap_mode="r")
    assert not mapped.flags.writeable
    kv = np.broadcast_to(random(1, 1, 30, 16, seed=14), (1, 2, 30, 16))  # one head read twice, stride 0
    expected = reference(q, np.ascontiguousarray(kv), np.ascontiguousarray(kv))
    assert np.abs(longattn.attention(mapped, kv, kv) - expected).max() < 1e-5
