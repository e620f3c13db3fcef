"""longattn.KvCache from NumPy: appends in pieces, decoding and chunked prefill of a batch of
sequences against attention() on the same keys, forks, int8 and bf16 caches, RoPE, threads,
and bad arguments that leave the cache unchanged."""

import threading

import numpy as np
import pytest

import longattn


def random(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def filled_cache(lengths, *, kv_heads=2, d=32, dtype="float32", page_tokens=16, rope=None, seed=1):
    """A cache holding one sequence per length, each appended in two pieces."""
    cache = longattn.KvCache(kv_heads=kv_heads, d=d, dtype=dtype, page_tokens=page_tokens, rope=rope)
    ids = []
    for i, n in enumerate(lengths):
        seq = cache.add_sequence()
        k, v = random(kv_heads, n, d, seed=seed + 2 * i), random(kv_heads, n, d, seed=seed + 2 * i + 1)
        cache.append(seq, k[:, : n // 3], v[:, : n // 3])
        cache.append(seq, k[:, n // 3 :], v[:, n // 3 :])
        ids.append(seq)
    return cache, ids


def test_decoding_a_batch_equals_attention_on_the_keys_it_reads():
    lengths = [37, 200, 5]
    cache, ids = filled_cache(lengths)
    q = random(len(lengths), 8, 1, 32, seed=9)  # 8 query heads on 2 kv heads
    out = cache.attention(q, sequences=ids)
    for s, seq in enumerate(ids):
        k, v = cache.read(seq)
        assert k.shape == (1, 2, lengths[s], 32)
        np.testing.assert_array_equal(out[s : s + 1], longattn.attention(q[s : s + 1], k, v))


def test_chunked_prefill_is_causal_against_the_prefix_and_itself():
    cache, ids = filled_cache([100])
    q = random(1, 4, 24, 32, seed=3)  # the last 24 tokens of the sequence
    out, lse = cache.attention(q, sequences=ids, causal=True, return_lse=True)
    k, v = cache.read(ids[0])
    expected, expected_lse = longattn.attention(q, k, v, causal=True, return_lse=True)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(lse, expected_lse)


def test_fork_shares_the_prefix_and_drop_frees_what_only_it_held():
    cache, (parent,) = filled_cache([40])
    child = cache.fork(parent)
    assert cache.length(child) == 40 and child in cache
    extra = random(2, 3, 32, seed=5)
    cache.append(child, extra, extra)
    assert cache.length(child) == 43 and cache.length(parent) == 40
    np.testing.assert_array_equal(cache.read(child)[0][:, :, :40], cache.read(parent)[0])
    pages = cache.memory()["pages"]
    k_child, _ = cache.read(child)  # arrays of their own, alive past the sequence
    cache.drop(child)
    assert child not in cache and cache.memory()["pages"] < pages
    np.testing.assert_array_equal(k_child[:, :, 40:], extra[None])
    with pytest.raises(longattn.Error):
        cache.append(child, extra, extra)


def test_int8_and_bf16_caches_within_their_bounds_of_the_fp32_one():
    q = random(2, 4, 1, 32, seed=7)
    exact, ids = filled_cache([300, 77])
    reference = exact.attention(q, sequences=ids)
    scale = np.abs(reference).max()
    for dtype, bound in (("bfloat16", 2e-2), ("int8", 1e-2)):
        cache, ids = filled_cache([300, 77], dtype=dtype)
        out = cache.attention(q, sequences=ids)
        assert np.abs(out - reference).max() <= bound * scale, dtype
        k, v = cache.read(ids[0])  # what it decodes from: bit for bit, int8 scaled per row once
        same = longattn.attention(q[:1], k, v)
        assert np.abs(out[:1] - same).max() <= (0 if dtype == "bfloat16" else 1e-5 * scale), dtype
    memory = cache.memory()
    assert memory["bytes_per_token"] < exact.memory()["bytes_per_token"] / 3


def test_bf16_appends_and_the_bnhd_layout():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    k, v = random(12, 2, 32, seed=2), random(12, 2, 32, seed=3)  # [T, kv_heads, d]
    cache = longattn.KvCache(kv_heads=2, d=32)
    seq = cache.add_sequence()
    cache.append(seq, k.astype(ml_dtypes.bfloat16), v.astype(ml_dtypes.bfloat16), layout="bnhd")
    rounded = k.astype(ml_dtypes.bfloat16).astype(np.float32).swapaxes(0, 1)[None]
    np.testing.assert_array_equal(cache.read(seq)[0], rounded)


def test_bf16_queries_are_widened_as_read():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    cache, ids = filled_cache([70, 9])
    q = random(2, 4, 3, 32, seed=5).astype(ml_dtypes.bfloat16)
    out, lse = cache.attention(q, sequences=ids, causal=True, return_lse=True)
    expected, expected_lse = cache.attention(q.astype(np.float32), sequences=ids, causal=True, return_lse=True)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(lse, expected_lse)


def test_rope_rotates_keys_once_at_their_positions_and_queries_to_match():
    cache, ids = filled_cache([90], rope="half")
    plain, _ = filled_cache([90])
    k, v = plain.read(ids[0])
    q = random(1, 2, 3, 32, seed=4)
    out = cache.attention(q, sequences=ids, causal=True)
    expected = longattn.attention(q, k, v, causal=True, rope="half")
    assert np.abs(out - expected).max() < 1e-5


def test_attention_calls_run_at_once_and_appends_wait_for_them():
    cache, ids = filled_cache([2000, 1500], d=64)
    q = random(2, 8, 1, 64, seed=6)
    expected = cache.attention(q, sequences=ids)
    results, errors = [], []

    def decode():
        try:
            for _ in range(20):
                results.append(cache.attention(q, sequences=ids))
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    other = cache.add_sequence()
    threads = [threading.Thread(target=decode) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(20):  # another sequence grows meanwhile
        cache.append(other, random(2, 5, 64, seed=i), random(2, 5, 64, seed=i + 1))
    for t in threads:
        t.join()
    assert not errors and len(results) == 60
    for out in results:
        np.testing.assert_array_equal(out, expected)
    assert cache.length(other) == 100


def test_bad_arguments_raise_and_leave_the_cache_unchanged():
    with pytest.raises(longattn.Error, match="page"):
        longattn.KvCache(kv_heads=1, d=8, page_tokens=24)
    with pytest.raises(TypeError):
        longattn.KvCache(kv_heads=1, d=8, dtype="float16")
    cache = longattn.KvCache(kv_heads=2, d=8, dtype="int8")
    seq = cache.add_sequence()
    bad = random(2, 4, 8)
    bad[1, 2, 3] = np.nan
    with pytest.raises(longattn.Error):
        cache.append(seq, bad, random(2, 4, 8))
    assert cache.length(seq) == 0
    with pytest.raises(TypeError):
        cache.append(seq, random(2, 4, 8).astype(np.float64), random(2, 4, 8))
    cache.append(seq, random(2, 4, 8), random(2, 4, 8))
    with pytest.raises(longattn.Error, match="key_lengths"):
        cache.attention(random(1, 2, 1, 8), sequences=[seq], key_lengths=[4])
    with pytest.raises(TypeError):
        cache.attention(random(1, 2, 1, 8).astype(np.float64), sequences=[seq])
