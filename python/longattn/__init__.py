"""longattn: exact attention on CPUs for sequences far longer than the n x n matrix.

``attention(q, k, v, ...)`` on NumPy arrays or PyTorch tensors (float32 or bfloat16: torch's,
or ml_dtypes' for NumPy), read and written where they lie, strided views included; the
result is the kind of object given. ``AttentionPlan`` validates a problem once and runs it
many times (a decoding loop); ``KvCache`` keeps many sequences' keys and values in pages
(float32, bfloat16 or int8) and decodes a batch of them from where they lie. Bad arguments raise ``longattn.Error`` (a ``ValueError``) with
the engine's message, or ``TypeError`` for a wrong element type, before anything is written.
The GIL is released while the engine runs.
"""

from __future__ import annotations

import numpy as _numpy

from . import _longattn
from ._longattn import AttentionStats, Error, __version__

_numpy_array = _numpy.ndarray
_float32 = _numpy.dtype(_numpy.float32)

__all__ = ["attention", "AttentionPlan", "AttentionStats", "Error", "KvCache", "MultiHeadSelfAttention", "isa"]


def isa() -> str:
    """The SIMD path attention runs here: "avx512", "avx2" or "scalar" (LONGATTN_ISA forces one)."""
    return _longattn.isa()


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _bf16_bits(x):
    """A NumPy array of ml_dtypes' bfloat16 as its uint16 bits (DLPack has no such NumPy type)."""
    if not _is_torch(x) and getattr(getattr(x, "dtype", None), "name", "") == "bfloat16":
        import numpy

        return x.view(numpy.uint16), True
    return x, False


def _readable(name, x):
    """x as the engine reads it: a CPU tensor with no graph to record (detached, a view, under
    torch.no_grad()), or the array itself."""
    if not _is_torch(x):
        return x
    if x.device.type != "cpu":
        raise ValueError(f"{name}: expected a CPU tensor, got one on {x.device}")
    if x.requires_grad:
        import torch

        if torch.is_grad_enabled():
            raise NotImplementedError(f"{name}: requires grad; longattn has no backward pass (use torch.no_grad())")
        return x.detach()
    return x


def _empty(like, shape):
    if _is_torch(like):
        import torch

        return torch.empty(shape, dtype=torch.float32)
    import numpy

    return numpy.empty(shape, dtype=numpy.float32)


def _logical(x, layout):
    """[B, H, N, D] in the logical order: a zero-copy view of a [B, N, H, D] array."""
    if layout == "bhnd":
        return x
    if layout == "bnhd":
        return x.transpose(1, 2) if _is_torch(x) else x.swapaxes(1, 2)
    raise ValueError(f"layout: expected 'bhnd' or 'bnhd', got {layout!r}")


def _numpy_view(x):
    """A torch tensor as a NumPy array over the same memory (DLPack knows no bool dtype in NumPy 1)."""
    return x.numpy() if _is_torch(x) else x


def _options(*, causal, window, scale, key_lengths, mask, rope, rope_base, alibi, relative_bias, normalizer,
             threads, isa, bf16_products, positions, sigmoid_bias, score_bias=None, block_sparse=None,
             additive=None, softcap=None, sinks=None, sink_keys=0, cu_seqlens=None, qk_precision="inputs"):
    import numpy

    o = _longattn.Options()
    if causal and window is not None:
        raise ValueError("causal and window: give one of them (causal is window=(-1, 0))")
    o.window_left, o.window_right = (-1, 0) if causal else (window if window is not None else (-1, -1))
    o.scale = scale
    o.sigmoid_bias = sigmoid_bias
    if key_lengths is not None:
        o.key_lengths = numpy.ascontiguousarray(numpy.asarray(key_lengths), dtype=numpy.int64)
    if mask is not None:
        o.mask = _numpy_view(mask)
    if relative_bias is not None:
        o.relative_bias = relative_bias
    if score_bias is not None:
        o.score_bias = score_bias
    o.softcap = softcap
    o.sink_keys = sink_keys
    if sinks is not None:
        o.sinks = numpy.ascontiguousarray(_numpy_view(sinks), dtype=numpy.float32)
    if cu_seqlens is not None:
        o.cu_seqlens_q, o.cu_seqlens_k = (numpy.ascontiguousarray(_numpy_view(x), dtype=numpy.int64)
                                          for x in cu_seqlens)
    if additive is not None:
        o.additive_wq, o.additive_wk, o.additive_w = (_numpy_view(x) for x in additive)
    if block_sparse is not None:
        o.block_q, o.block_k, visible = block_sparse
        o.visible_blocks = numpy.ascontiguousarray(numpy.asarray(visible, dtype=numpy.int64).reshape(-1, 2))
    o.normalizer = normalizer
    o.rope = rope or "none"
    o.rope_base = rope_base
    o.alibi = alibi
    o.threads = threads
    o.isa = isa
    o.bf16_products = bf16_products
    o.qk_precision = qk_precision
    if positions is not None:
        o.query_start, o.key_start = positions
    return o


_OPTION_DEFAULTS = dict(causal=False, window=None, scale=None, key_lengths=None, mask=None, block_sparse=None,
                        score_bias=None, additive=None, softcap=None, sinks=None, sink_keys=0, cu_seqlens=None,
                        rope=None, rope_base=10000.0, alibi=False, relative_bias=None,
                        normalizer="softmax", sigmoid_bias=None, positions=None, threads=0, isa="auto",
                        bf16_products="native", qk_precision="inputs")


def _options_of(who, given):
    """The engine's options from keyword arguments as attention() takes them."""
    unknown = set(given) - set(_OPTION_DEFAULTS)
    if unknown:
        raise TypeError(f"{who}: unknown options {sorted(unknown)}")
    return _options(**{**_OPTION_DEFAULTS, **given})


def attention(q, k, v, *, causal=False, window=None, scale=None, key_lengths=None, mask=None, block_sparse=None,
              score_bias=None, additive=None, softcap=None, sinks=None, sink_keys=0, cu_seqlens=None, rope=None, rope_base=10000.0, alibi=False, relative_bias=None, normalizer="softmax",
              sigmoid_bias=None, positions=None, return_lse=False, layout="bhnd", threads=0, isa="auto",
              bf16_products="native", qk_precision="inputs", out=None):
    """Exact attention: out[b, h, i] = softmax_j(scale * q[b, h, i] . k[b, g, j]) v[b, g, j].

    q [B, Hq, Nq, D], k [B, Hkv, Nk, D], v [B, Hkv, Nk, Dv] (layout="bnhd": [B, N, H, D]),
    any strides; float32, or bfloat16 (q too, or k and v only). Returns out [B, Hq, Nq, Dv]
    float32 in the inputs' layout (and lse [B, Hq, Nq] with return_lse), written into `out`
    when given. causal / window=(left, right) (-1 unbounded) align queries bottom-right;
    key_lengths [B] hides padding; mask [Nq, Nk] (bool/uint8, nonzero visible); block_sparse=
    (block_q, block_k, visible [count, 2] (query block, key block) pairs); score_bias
    [B, Hq, Nq, Nk] float32 added to the scores (stride 0 shares a dimension: pass a
    broadcast view); additive=(Wq [Da, D], Wk [Da, D], w [Da]): Bahdanau scores
    wᵀ tanh(Wq q + Wk k); softcap=c (scores c·tanh(s/c), Gemma 2); sinks [Hq] (a logit per
    head in every softmax denominator, gpt-oss); sink_keys=n (keys j < n seen past a window's
    left edge); cu_seqlens=(cu_q, cu_k) (packed sequences in batch 1, [S + 1] offsets each);
    rope "half" or "interleaved"; alibi; relative_bias [Hq, 2K+1];
    normalizer "softmax", "sigmoid", "relu" or "linear"; positions=(query_start, key_start)
    for a slice of a longer sequence; qk_precision="int8" computes q·k on smoothed int8
    (AVX512-VNNI, README "int8 scores").
    """
    q, k, v = (_readable(name, x) for name, x in (("q", q), ("k", k), ("v", v)))
    options = _options(causal=causal, window=window, scale=scale, key_lengths=key_lengths, mask=mask, rope=rope,
                       rope_base=rope_base, alibi=alibi, relative_bias=relative_bias, normalizer=normalizer,
                       threads=threads, isa=isa, bf16_products=bf16_products, positions=positions,
                       sigmoid_bias=sigmoid_bias, score_bias=score_bias, block_sparse=block_sparse,
                       additive=additive, softcap=softcap, sinks=sinks, sink_keys=sink_keys, cu_seqlens=cu_seqlens,
                       qk_precision=qk_precision)
    qv, kv, vv = (_logical(x, layout) for x in (q, k, v))
    (qv, bits_q), (kv, bits_k), (vv, bits_v) = _bf16_bits(qv), _bf16_bits(kv), _bf16_bits(vv)
    B, Hq, Nq = qv.shape[0], qv.shape[1], qv.shape[2]
    Dv = vv.shape[3]
    if out is None:
        out = _empty(q, (B, Hq, Nq, Dv) if layout == "bhnd" else (B, Nq, Hq, Dv))
    lse = _empty(q, (B, Hq, Nq)) if return_lse else None
    _longattn.attention(qv, kv, vv, _logical(out, layout), lse, options, bits_q or bits_k or bits_v)
    return (out, lse) if return_lse else out


class AttentionPlan:
    """A problem validated once and run many times: sizes, element types and options.

    plan = AttentionPlan(batch=1, q_heads=32, kv_heads=8, nq=1, nk=4096, d=128, causal=True)
    out = plan.run(q, k, v)   # views of the plan's sizes, any strides
    """

    def __init__(self, *, batch, q_heads, kv_heads, nq, nk, d, dv=0, dtype="float32", kv_dtype=None,
                 layout="bhnd", **options):
        kv_dtype = kv_dtype or dtype
        for name, value in (("dtype", dtype), ("kv_dtype", kv_dtype)):
            if value not in ("float32", "bfloat16"):
                raise TypeError(f"{name}: expected 'float32' or 'bfloat16', got {value!r}")
        self._layout = layout
        self._return_lse = options.pop("return_lse", False)
        self._options = _options_of("AttentionPlan", options)  # kept: the plan reads its arrays
        self._plan = _longattn.AttentionPlan(batch, q_heads, kv_heads, nq, nk, d, dv, dtype == "bfloat16",
                                             kv_dtype == "bfloat16", self._options)
        self._shape = (batch, q_heads, nq, dv or d)

    def run(self, q, k, v, *, out=None):
        """out (and lse, when the plan was made with return_lse=True) of these views."""
        B, Hq, Nq, Dv = self._shape
        if out is None:
            out = _empty(q, (B, Hq, Nq, Dv) if self._layout == "bhnd" else (B, Nq, Hq, Dv))
        lse = _empty(q, (B, Hq, Nq)) if self._return_lse else None
        if self._layout == "bhnd" and type(q) is _numpy_array and q.dtype is _float32 and k.dtype is _float32:
            self._plan.run(q, k, v, out, lse, False)  # a decoding loop's common case, checked by the engine
        else:
            q, k, v = (_readable(name, x) for name, x in (("q", q), ("k", k), ("v", v)))
            qv, kv, vv = (_logical(x, self._layout) for x in (q, k, v))
            (qv, bits_q), (kv, bits_k), (vv, bits_v) = _bf16_bits(qv), _bf16_bits(kv), _bf16_bits(vv)
            self._plan.run(qv, kv, vv, _logical(out, self._layout), lse, bits_q or bits_k or bits_v)
        return (out, lse) if self._return_lse else out


from .kv_cache import KvCache  # noqa: E402  (they use the helpers above)
from .layer import MultiHeadSelfAttention  # noqa: E402
