"""longattn on PyTorch tensors: the golden cases, torch in and torch out, the drop-in for
scaled_dot_product_attention (eager and under torch.compile), nn.MultiheadAttention, zero copy
and bad arguments. Skipped where torch is not installed."""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import golden  # noqa: E402
import longattn  # noqa: E402
import longattn.torch as lt  # noqa: E402

F = torch.nn.functional

# PyTorch's own tolerances for its CPU fused attention against the math path (test_transformers).
TOLERANCES = {torch.float32: dict(atol=1e-5, rtol=5e-6), torch.bfloat16: dict(atol=5e-2, rtol=5e-2)}


def randn(*shape, seed, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.mark.parametrize("folder,case", list(golden.attention_cases()))
def test_golden_case_from_torch_tensors(folder, case):
    golden.check_case(folder, case, torch.from_numpy)


def masks(batch, heads, nq, nk):
    """PyTorch's mask shapes: every 2-d and 4-d broadcast of [B, H, L, S], boolean and float."""
    shapes = [s for s in itertools.product([nq, 1], [nk, 1])]
    shapes += [s for s in itertools.product([batch, 1], [heads, 1], [nq], [nk])]
    for i, shape in enumerate(shapes):
        yield pytest.param("bool", shape, id=f"bool{list(shape)}")
        yield pytest.param("float", shape, id=f"float{list(shape)}")


def make_mask(kind, shape, seed):
    if kind == "bool":
        return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) > 0.3
    return randn(*shape, seed=seed) * 2


def reference(q, k, v, **kwargs):
    """PyTorch's SDPA on float64 copies (its math path), rounded to q's dtype."""
    mask = kwargs.pop("attn_mask", None)
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.double()
    return F.scaled_dot_product_attention(q.double(), k.double(), v.double(), attn_mask=mask, **kwargs).to(q.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("batch,hq,hkv,nq,nk,d,dv", [
    (1, 1, 1, 1, 1, 8, 8), (2, 4, 4, 37, 37, 64, 64), (1, 8, 2, 5, 300, 64, 32), (2, 6, 1, 128, 96, 80, 80),
    (1, 2, 2, 300, 129, 16, 48), (3, 4, 2, 1, 513, 128, 128)])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_sdpa_matches_pytorch(dtype, batch, hq, hkv, nq, nk, d, dv, causal, scale):
    q, k, v = randn(batch, hq, nq, d, seed=1, dtype=dtype), randn(batch, hkv, nk, d, seed=2, dtype=dtype), \
        randn(batch, hkv, nk, dv, seed=3, dtype=dtype)
    kwargs = dict(is_causal=causal, scale=scale, enable_gqa=hq != hkv)
    out = lt.scaled_dot_product_attention(q, k, v, **kwargs)
    assert out.dtype == dtype and out.shape == (batch, hq, nq, dv)
    torch.testing.assert_close(out, reference(q, k, v, **kwargs), **TOLERANCES[dtype])


@pytest.mark.parametrize("kind,shape", list(masks(2, 4, 33, 70)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_sdpa_masks_broadcast_as_pytorch(kind, shape, dtype):
    q, k, v = randn(2, 4, 33, 32, seed=4, dtype=dtype), randn(2, 2, 70, 32, seed=5, dtype=dtype), \
        randn(2, 2, 70, 32, seed=6, dtype=dtype)
    mask = make_mask(kind, shape, seed=7)
    if kind == "float" and dtype == torch.bfloat16:
        mask = mask.to(dtype)  # PyTorch takes a mask in the query's dtype
    out = lt.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    torch.testing.assert_close(out, reference(q, k, v, attn_mask=mask, enable_gqa=True), **TOLERANCES[dtype])


def test_sdpa_three_and_five_dimensions_and_strided_views():
    q, k, v = randn(3, 20, 16, seed=8), randn(3, 30, 16, seed=9), randn(3, 30, 16, seed=10)
    torch.testing.assert_close(lt.scaled_dot_product_attention(q, k, v), reference(q, k, v), **TOLERANCES[torch.float32])
    q, k, v = randn(2, 3, 4, 20, 16, seed=11), randn(2, 3, 4, 30, 16, seed=12), randn(2, 3, 4, 30, 16, seed=13)
    mask = randn(3, 1, 20, 30, seed=14)
    torch.testing.assert_close(lt.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                               reference(q, k, v, attn_mask=mask), **TOLERANCES[torch.float32])
    big = randn(2, 50, 8, 40, seed=15)  # [B, N, H, D] viewed as [B, H, N, D], features cut
    q, k, v = big[:, :20, :, :16].transpose(1, 2), big[:, 10:, :, 8:24].transpose(1, 2), big[:, 10:, :, 24:].transpose(1, 2)
    torch.testing.assert_close(lt.scaled_dot_product_attention(q, k, v, is_causal=True),
                               reference(q, k, v, is_causal=True), **TOLERANCES[torch.float32])


def test_sdpa_rows_that_see_no_key_are_zeros_as_in_pytorch():
    q, k, v = randn(1, 2, 6, 8, seed=16), randn(1, 2, 9, 8, seed=17), randn(1, 2, 9, 8, seed=18)
    mask = torch.ones(6, 9, dtype=torch.bool)
    mask[2] = False
    out = lt.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (out[:, :, 2] == 0).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_sdpa_under_torch_compile():
    def block(q, k, v, mask):
        return lt.scaled_dot_product_attention(q * 2, k, v, attn_mask=mask, enable_gqa=True).relu() + 1

    compiled = torch.compile(block, fullgraph=True)  # a graph break would be an error
    q, k, v = randn(2, 4, 40, 32, seed=19), randn(2, 2, 50, 32, seed=20), randn(2, 2, 50, 32, seed=21)
    mask = randn(1, 4, 40, 50, seed=22)
    expected = F.scaled_dot_product_attention(q * 2, k, v, attn_mask=mask, enable_gqa=True).relu() + 1
    torch.testing.assert_close(compiled(q, k, v, mask), expected, **TOLERANCES[torch.float32])
    q = randn(2, 4, 7, 32, seed=23)  # another shape: the fake implementation gives the output's
    torch.testing.assert_close(compiled(q, k, v, mask[:, :, :7]),
                               F.scaled_dot_product_attention(q * 2, k, v, attn_mask=mask[:, :, :7],
                                                              enable_gqa=True).relu() + 1, **TOLERANCES[torch.float32])


def test_the_custom_op_is_registered_with_its_schema():
    q = randn(1, 2, 5, 8, seed=24)
    out = torch.ops.longattn.scaled_dot_product_attention(q, q, q, None, 0.0, True, None, False)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, q, q, is_causal=True))


def test_sdpa_bad_arguments():
    q = randn(1, 4, 8, 16, seed=25)
    with pytest.raises(NotImplementedError, match="dropout"):
        lt.scaled_dot_product_attention(q, q, q, dropout_p=0.1)
    with pytest.raises(NotImplementedError, match="query: requires grad"):
        lt.scaled_dot_product_attention(q.clone().requires_grad_(), q, q)
    with torch.no_grad():  # no graph is recorded: allowed
        lt.scaled_dot_product_attention(q.clone().requires_grad_(), q, q)
    with pytest.raises(ValueError, match="key: expected a CPU tensor, got one on meta"):
        lt.scaled_dot_product_attention(q, q.to("meta"), q)
    with pytest.raises(TypeError, match="value: expected float32 or bfloat16, got torch.float64"):
        lt.scaled_dot_product_attention(q, q, q.double())
    with pytest.raises(TypeError, match="one dtype"):
        lt.scaled_dot_product_attention(q, q.bfloat16(), q.bfloat16())
    with pytest.raises(ValueError, match="enable_gqa=True"):
        lt.scaled_dot_product_attention(q, q[:, :2], q[:, :2])
    with pytest.raises(ValueError, match="3 heads do not divide 4"):
        lt.scaled_dot_product_attention(q, q[:, :3], q[:, :3], enable_gqa=True)
    with pytest.raises(ValueError, match=r"attn_mask: shape \(8, 7\) does not broadcast to \(1, 4, 8, 8\)"):
        lt.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(8, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="not both"):
        lt.scaled_dot_product_attention(q, q, q, attn_mask=torch.ones(8, 8, dtype=torch.bool), is_causal=True)
    with pytest.raises(ValueError, match="shapes"):
        lt.scaled_dot_product_attention(q, q[..., :8], q)


def spy_on_engine(monkeypatch):
    """The data pointers of every array the engine module is handed."""
    seen = []
    engine = longattn._longattn.attention

    def spy(q, k, v, out, lse, options, bf16_bits):
        seen.append([x.data_ptr() if isinstance(x, torch.Tensor) else x.ctypes.data for x in (q, k, v, out)])
        return engine(q, k, v, out, lse, options, bf16_bits)

    monkeypatch.setattr(longattn._longattn, "attention", spy)
    return seen


def test_inputs_are_read_where_they_lie_and_out_written_in_place(monkeypatch):
    seen = spy_on_engine(monkeypatch)
    big = randn(1, 40, 4, 48, seed=26)  # [B, N, H, D]: q, k, v strided views of it
    q, k, v = big[..., :16], big[..., 16:32], big[..., 32:]
    out = torch.full((1, 40, 4, 16), float("nan"))
    assert longattn.attention(q, k, v, layout="bnhd", causal=True, out=out) is out
    assert seen[-1] == [q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr()]
    expected = F.scaled_dot_product_attention(*(x.transpose(1, 2) for x in (q, k, v)), is_causal=True)
    torch.testing.assert_close(out.transpose(1, 2), expected)
    lt.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    assert seen[-1][:3] == [q.data_ptr(), k.data_ptr(), v.data_ptr()]


def test_torch_bfloat16_into_float32_out():
    q, k, v = (randn(1, 2, 64, 32, seed=s, dtype=torch.bfloat16) for s in (27, 28, 29))
    out = torch.empty(1, 2, 64, 32)
    assert longattn.attention(q, k, v, out=out) is out
    torch.testing.assert_close(out, reference(q.float(), k.float(), v.float()), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("bias,batch_first,separate", [(True, True, False), (False, True, False),
                                                       (True, False, False), (True, True, True)])
def test_multi_head_layer_from_torch(bias, batch_first, separate):
    torch.manual_seed(30)
    module = torch.nn.MultiheadAttention(64, 4, bias=bias, batch_first=batch_first,
                                         kdim=64 if not separate else None).eval()
    if separate:  # separate q, k and v weights, as a module built with kdim / vdim keeps them
        module._qkv_same_embed_dim = False
        module.q_proj_weight, module.k_proj_weight, module.v_proj_weight = (
            torch.nn.Parameter(w) for w in module.in_proj_weight.detach().chunk(3))
    layer = longattn.MultiHeadSelfAttention.from_torch(module)
    x = randn(3, 50, 64, seed=31) if batch_first else randn(50, 3, 64, seed=31)
    with torch.no_grad():
        expected = module(x, x, x, need_weights=False)[0]
    torch.testing.assert_close(layer(x), expected, **TOLERANCES[torch.float32])
    np.testing.assert_allclose(layer(x.numpy()), expected.numpy(), atol=1e-5, rtol=5e-6)  # NumPy too


def test_multi_head_layer_causal_matches_a_causal_mask():
    torch.manual_seed(32)
    module = torch.nn.MultiheadAttention(48, 6, batch_first=True).eval()
    x = randn(2, 33, 48, seed=33)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(33)
    with torch.no_grad():
        expected = module(x, x, x, attn_mask=mask, need_weights=False)[0]
    torch.testing.assert_close(longattn.MultiHeadSelfAttention.from_torch(module, causal=True)(x), expected,
                               **TOLERANCES[torch.float32])


def test_multi_head_layer_refuses_what_it_cannot_compute():
    with pytest.raises(NotImplementedError, match="add_bias_kv"):
        longattn.MultiHeadSelfAttention.from_torch(torch.nn.MultiheadAttention(16, 2, add_bias_kv=True))
    with pytest.raises(ValueError, match="kdim = vdim = embed_dim = 16"):
        longattn.MultiHeadSelfAttention.from_torch(torch.nn.MultiheadAttention(16, 2, kdim=8, vdim=8))
    with pytest.raises(TypeError, match="nn.MultiheadAttention"):
        longattn.MultiHeadSelfAttention.from_torch(torch.nn.Linear(4, 4))
    layer = longattn.MultiHeadSelfAttention.from_torch(torch.nn.MultiheadAttention(16, 2, batch_first=True))
    with pytest.raises(longattn.Error, match="x.shape"):
        layer(torch.zeros(2, 5, 8))
    with pytest.raises(NotImplementedError, match="x: requires grad"):
        layer(torch.zeros(2, 5, 16, requires_grad=True))


def test_kv_cache_from_torch_tensors_fp32_and_bf16():
    cache = longattn.KvCache(kv_heads=2, d=16, dtype="bfloat16")
    seq = cache.add_sequence()
    k, v = randn(2, 30, 16, seed=1), randn(2, 30, 16, seed=2)
    cache.append(seq, k[:, :10].to(torch.bfloat16), v[:, :10].to(torch.bfloat16))
    cache.append(seq, k[:, 10:], v[:, 10:])  # fp32, rounded by the cache
    q = randn(1, 4, 1, 16, seed=3)
    out = cache.attention(q, sequences=[seq])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    kr, vr = (torch.from_numpy(x) for x in cache.read(seq))
    torch.testing.assert_close(kr[0], k.to(torch.bfloat16).float(), rtol=0, atol=0)
    expected = F.scaled_dot_product_attention(q, kr.repeat_interleave(2, 1), vr.repeat_interleave(2, 1))
    torch.testing.assert_close(out, expected, **TOLERANCES[torch.float32])
    bf16_q = q.to(torch.bfloat16)  # widened as read: the float32 call on the rounded queries
    torch.testing.assert_close(cache.attention(bf16_q, sequences=[seq]), cache.attention(bf16_q.float(), sequences=[seq]),
                               rtol=0, atol=0)
