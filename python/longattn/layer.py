"""The multi-head self-attention layer: X -> Q, K, V projections, attention per head, Wo.

Weights as PyTorch stores them (nn.Linear's [out, in]), so those of nn.MultiheadAttention load
as they are: ``MultiHeadSelfAttention.from_torch(module)``.
"""

from __future__ import annotations

import numpy as _numpy

from . import _is_torch, _longattn, _options_of, _readable

_WEIGHT_NAMES = ("wq", "wk", "wv", "in_proj_weight", "wo", "bq", "bk", "bv", "in_proj_bias", "bo", "position_table")


def _float32_array(name, x):
    """A weight as a float32 NumPy array (the layer copies it; a torch tensor is detached)."""
    if _is_torch(x):
        x = x.detach().cpu().float().contiguous().numpy()
    x = _numpy.asarray(x)
    if x.dtype != _numpy.float32:
        raise TypeError(f"weights[{name!r}]: expected float32, got {x.dtype}")
    return x


class MultiHeadSelfAttention:
    """y [B, N, E] = the layer applied to x [B, N, E] (batch_first=False: [N, B, E]).

    layer = MultiHeadSelfAttention(embed_dim=512, heads=8, weights={"in_proj_weight": w, "wo": wo},
                                   causal=True)
    y = layer(x)            # NumPy in, NumPy out; torch in, torch out
    Weights: wq, wk, wv ([Hq·D, E], [Hkv·D, E], [Hkv·D, E]) or in_proj_weight [3E, E]; wo
    [E, Hq·D]; optional biases bq, bk, bv or in_proj_bias, bo; position_table [max_len, E] with
    positions="learned". Attention options as longattn.attention takes them (causal, window,
    rope, alibi, relative_bias, normalizer, scale, threads, ...). precision="bf16": bf16 weights,
    projections and Q, K, V (x and y stay float32), where the CPU has AVX-512; fp32 elsewhere.
    """

    def __init__(self, *, embed_dim, heads, weights, kv_heads=0, head_dim=0, positions="none", batch_first=True,
                 precision="fp32", **attention_options):
        unknown = set(weights) - set(_WEIGHT_NAMES)
        if unknown:
            raise TypeError(f"weights: unknown names {sorted(unknown)}; expected some of {list(_WEIGHT_NAMES)}")
        self._options = _options_of("MultiHeadSelfAttention", attention_options)
        arrays = {name: _float32_array(name, x) for name, x in weights.items() if x is not None}
        self._layer = _longattn.MultiHeadSelfAttention(embed_dim, heads, kv_heads, head_dim, positions,
                                                       self._options, arrays, precision)
        self.embed_dim = embed_dim
        self.batch_first = batch_first

    @classmethod
    def from_torch(cls, module, *, precision="fp32", **attention_options):
        """The layer of an nn.MultiheadAttention (its eval-mode forward, need_weights=False), with
        or without biases, batch_first or not; attention options (causal=True, rope=...) added."""
        import torch

        if not isinstance(module, torch.nn.MultiheadAttention):
            raise TypeError(f"module: expected a torch.nn.MultiheadAttention, got {type(module).__name__}")
        if module.bias_k is not None or module.add_zero_attn:
            raise NotImplementedError("module: add_bias_kv and add_zero_attn are not supported")
        if module.kdim != module.embed_dim or module.vdim != module.embed_dim:
            raise ValueError(f"module: self-attention needs kdim = vdim = embed_dim = {module.embed_dim}, "
                             f"got kdim = {module.kdim}, vdim = {module.vdim}")
        if module._qkv_same_embed_dim:
            weights = {"in_proj_weight": module.in_proj_weight}
        else:
            weights = {"wq": module.q_proj_weight, "wk": module.k_proj_weight, "wv": module.v_proj_weight}
        weights.update(in_proj_bias=module.in_proj_bias, wo=module.out_proj.weight, bo=module.out_proj.bias)
        return cls(embed_dim=module.embed_dim, heads=module.num_heads, weights=weights,
                   batch_first=module.batch_first, precision=precision, **attention_options)

    def __call__(self, x, *, out=None):
        """The layer on x, into `out` when given (float32, x's shape); the GIL is released while
        it runs. batch_first: x [B, N, E] is read where it lies (features contiguous, each
        sequence's rows after the last's; other strides are an Error). Otherwise x is
        [N, B, E], copied to [B, N, E] and the result copied back: the layer reads a batch's
        rows together."""
        x = _readable("x", x)
        if self.batch_first:
            out = _float32_like(x) if out is None else out
            self._layer.forward(x, out)
            return out
        rows = _contiguous(_swap_batch(x))
        y = _float32_like(rows)
        self._layer.forward(rows, y)
        if out is None:
            return _contiguous(_swap_batch(y))
        out[...] = _swap_batch(y)
        return out

    forward = __call__


def _float32_like(x):
    if _is_torch(x):
        import torch

        return torch.empty(tuple(x.shape), dtype=torch.float32)
    return _numpy.empty(x.shape, dtype=_numpy.float32)


def _contiguous(x):
    return x.contiguous() if _is_torch(x) else _numpy.ascontiguousarray(x)


def _swap_batch(x):
    """[N, B, E] <-> [B, N, E], a view."""
    return x.transpose(0, 1) if _is_torch(x) else x.swapaxes(0, 1)

