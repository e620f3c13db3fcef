"""KvCache: keys and values of many sequences in pages, appended a few tokens at a time, and
attention of their new queries read from the pages where they lie (the C++ longattn::KvCache)."""

from __future__ import annotations

from . import _longattn
from . import _bf16_bits, _empty, _logical, _options_of, _readable

_CACHE_TYPES = {"float32": "fp32", "bfloat16": "bf16", "int8": "int8"}


class KvCache:
    """A paged key-value cache for serving.

    cache = KvCache(kv_heads=8, d=128, dtype="int8", rope="half")
    seq = cache.add_sequence()
    cache.append(seq, k, v)                        # k [kv_heads, T, d], v [kv_heads, T, dv]
    out = cache.attention(q, sequences=[seq])      # q [S, q_heads, nq, d], the last nq tokens

    dtype "float32", "bfloat16" (rounded when appended) or "int8" (symmetric, one scale per
    token and kv head); page_tokens a power of two, 16 ... 256; rope "half" or "interleaved"
    rotates keys once as they are appended and queries to match. fork(seq) shares a
    sequence's pages until one side writes to a shared page; drop(seq) frees what no other
    sequence shares. Attention calls on one cache run at once, without the GIL; append, fork
    and drop wait for them and run alone.
    """

    def __init__(self, *, kv_heads, d, dv=0, layers=1, page_tokens=64, dtype="float32", rope=None,
                 rope_base=10000.0):
        if dtype not in _CACHE_TYPES:
            raise TypeError(f"dtype: expected 'float32', 'bfloat16' or 'int8', got {dtype!r}")
        self._cache = _longattn.KvCache(layers, kv_heads, d, dv, page_tokens, _CACHE_TYPES[dtype], rope or "none",
                                        rope_base)
        self.kv_heads, self.d, self.dv, self.layers, self.dtype = kv_heads, d, dv or d, layers, dtype

    def add_sequence(self) -> int:
        """A new, empty sequence's id."""
        return self._cache.add_sequence()

    def fork(self, parent: int) -> int:
        """A new sequence holding what `parent` holds now, sharing its pages."""
        return self._cache.fork(parent)

    def drop(self, sequence: int) -> None:
        """Frees the sequence's pages no other sequence shares; its id is then invalid."""
        self._cache.drop(sequence)

    def __contains__(self, sequence) -> bool:
        return self._cache.contains(sequence)

    def length(self, sequence: int, layer: int = 0) -> int:
        """Tokens the sequence holds at `layer`."""
        return self._cache.length(sequence, layer)

    def memory(self) -> dict:
        """pages, page_bytes, bytes, reserved_bytes, tokens and bytes_per_token."""
        return self._cache.memory()

    def append(self, sequence: int, k, v, *, layer: int = 0, layout: str = "bhnd") -> None:
        """Appends k [kv_heads, T, d] and v [kv_heads, T, dv] (or with a leading 1; layout="bnhd":
        [T, kv_heads, d]), float32 or bfloat16, to the sequence's layer. Checked before anything
        is written: on an error the cache is unchanged."""
        k, v = (_readable(name, x) for name, x in (("k", k), ("v", v)))
        k, v = (x[None] if x.ndim == 3 else x for x in (k, v))
        (k, bits_k), (v, bits_v) = _bf16_bits(_logical(k, layout)), _bf16_bits(_logical(v, layout))
        self._cache.append(sequence, layer, k, v, bits_k or bits_v)

    def read(self, sequence: int, layer: int = 0):
        """(k, v) [1, kv_heads, length, d|dv] float32 NumPy arrays: what attention reads (int8
        dequantized)."""
        return self._cache.read(sequence, layer)

    def attention(self, q, *, sequences, layer: int = 0, out=None, return_lse=False, **options):
        """out [S, q_heads, nq, dv] float32 of q [S, q_heads, nq, d] float32 or bfloat16 (widened as
        read): the last nq tokens of each sequence (appended before the call) against its cached
        keys. nq = 1 decodes; more is a chunk of prefill (causal=True for causal prefill).
        Options as attention()'s, but for those the cache replaces (key_lengths, mask,
        block_sparse, additive, score_bias, cu_seqlens, positions, rope: Error). Equal bit for
        bit to attention() on read()'s keys."""
        import numpy

        q = _readable("q", q)
        q_elements, bits = _bf16_bits(q)
        ids = numpy.ascontiguousarray(numpy.asarray(sequences, dtype=numpy.int64).reshape(-1))
        S, Hq, Nq = q.shape[0], q.shape[1], q.shape[2]
        if out is None:
            out = _empty(q, (S, Hq, Nq, self.dv))
        lse = _empty(q, (S, Hq, Nq)) if return_lse else None
        self._cache.attention(layer, ids, q_elements, out, lse, _options_of("KvCache.attention", options), bits)
        return (out, lse) if return_lse else out
