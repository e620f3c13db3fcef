"""PyTorch's ``scaled_dot_product_attention`` on longattn's engine, for CPU tensors.

``longattn.torch.scaled_dot_product_attention(query, key, value, attn_mask=None,
dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False)`` takes the arguments of
``torch.nn.functional.scaled_dot_product_attention`` and means what PyTorch means by them:

- query [..., Hq, L, E], key [..., Hkv, S, E], value [..., Hkv, S, Ev] (3 or more dimensions,
  the leading ones equal), float32 or bfloat16 (all three alike); the result is query's dtype,
  [..., Hq, L, Ev]. Hq ≠ Hkv needs enable_gqa=True: query head h reads kv head h // (Hq / Hkv).
- is_causal: PyTorch's top-left alignment, query i sees keys j ≤ i (longattn.attention's
  causal=True aligns bottom-right, the last query at the last key, as decoding wants).
- attn_mask: boolean (True takes part) or float (added to the scores), broadcast to
  [..., Hq, L, S] as PyTorch broadcasts it. A boolean mask of one [L, S] matrix is read where
  it lies; one that differs across batch or heads becomes a float32 -inf/0 bias (a copy); a
  float mask in another dtype is copied to float32. A row that sees no key outputs zeros.
- Inputs are read where they lie (strided views included); a bfloat16 result is the float32
  output rounded (the engine accumulates in float32). It runs on torch.get_num_threads()
  threads, as PyTorch's own kernels do.

Not supported: dropout_p > 0 and inputs that require grad (longattn computes the forward
pass), tensors on other devices. They raise NotImplementedError or ValueError, as do shapes
and dtypes PyTorch would reject.

The function is also the custom op ``torch.ops.longattn.scaled_dot_product_attention``, which
``torch.compile`` keeps as one call in its graphs.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

import longattn

__all__ = ["scaled_dot_product_attention"]

_DTYPES = (torch.float32, torch.bfloat16)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """torch.nn.functional.scaled_dot_product_attention's forward pass on longattn (see the module)."""
    if torch.compiler.is_compiling():
        return torch.ops.longattn.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal,
                                                               scale, enable_gqa)
    return _attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def _check(query, key, value, attn_mask, dropout_p, is_causal, enable_gqa):
    if dropout_p > 0:
        raise NotImplementedError(f"dropout_p = {dropout_p}: longattn computes attention without dropout")
    named = (("query", query), ("key", key), ("value", value), ("attn_mask", attn_mask))
    for name, x in named:
        if x is None:
            continue
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.device.type != "cpu":
            raise ValueError(f"{name}: expected a CPU tensor, got one on {x.device}")
        if x.requires_grad and torch.is_grad_enabled():
            raise NotImplementedError(f"{name}: requires grad; longattn has no backward pass (use torch.no_grad())")
    for name, x in named[:3]:
        if x.dtype not in _DTYPES:
            raise TypeError(f"{name}: expected float32 or bfloat16, got {x.dtype}")
        if x.dim() < 3:
            raise ValueError(f"{name}: expected [..., heads, tokens, features] (3 or more dimensions), "
                             f"got shape {tuple(x.shape)}")
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(f"query, key and value: expected one dtype, got {query.dtype}, {key.dtype}, {value.dtype}")
    if not query.dim() == key.dim() == value.dim() or query.shape[:-3] != key.shape[:-3] or \
            key.shape[:-1] != value.shape[:-1] or query.shape[-1] != key.shape[-1]:
        raise ValueError(f"query, key and value: shapes {tuple(query.shape)}, {tuple(key.shape)}, "
                         f"{tuple(value.shape)} do not match ([..., Hq, L, E], [..., Hkv, S, E], [..., Hkv, S, Ev])")
    hq, hkv = query.shape[-3], key.shape[-3]
    if hq != hkv and not enable_gqa:
        raise ValueError(f"key: {hkv} heads for {hq} query heads; enable_gqa=True shares each among a group")
    if hq != hkv and (hkv == 0 or hq % hkv != 0):
        raise ValueError(f"key: {hkv} heads do not divide {hq} query heads")
    if is_causal and attn_mask is not None:
        raise ValueError("attn_mask: give it or is_causal=True, not both (as PyTorch)")


def _heads(x):
    """[..., H, N, D] as [B, H, N, D], a view where the leading dimensions allow one."""
    if x.dim() == 3:
        return x.unsqueeze(0)
    return x if x.dim() == 4 else x.reshape(-1, *x.shape[-3:])


def _mask_options(attn_mask, batch, shape):
    """attn_mask as longattn.attention's mask= (one boolean [L, S]) or score_bias= (float32
    [B, Hq, L, S], stride 0 where it is shared)."""
    try:
        full = torch.broadcast_shapes(attn_mask.shape, shape)
    except RuntimeError:
        full = None
    if full != shape:
        raise ValueError(f"attn_mask: shape {tuple(attn_mask.shape)} does not broadcast to {tuple(shape)}")
    if attn_mask.dtype == torch.bool and all(n == 1 for n in attn_mask.shape[:-2]):
        return {"mask": attn_mask.reshape(attn_mask.shape[-2:]).expand(shape[-2:])}
    if attn_mask.dtype == torch.bool:
        bias = torch.zeros(attn_mask.shape, dtype=torch.float32).masked_fill_(~attn_mask, -math.inf)
    elif attn_mask.dtype.is_floating_point:
        bias = attn_mask.to(torch.float32)
    else:
        raise TypeError(f"attn_mask: expected bool or a floating dtype, got {attn_mask.dtype}")
    return {"score_bias": bias.expand(shape).reshape(batch, *shape[-3:])}


def _attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    _check(query, key, value, attn_mask, dropout_p, is_causal, enable_gqa)
    q, k, v = _heads(query), _heads(key), _heads(value)
    options = {"scale": scale, "threads": torch.get_num_threads()}  # as PyTorch's own kernels
    if is_causal:
        options.update(causal=True, positions=(0, 0))  # top-left: query i at key position i
    if attn_mask is not None:  # detached: read, never differentiated (checked above)
        options.update(_mask_options(attn_mask.detach(), q.shape[0], (*query.shape[:-1], key.shape[-2])))
    out = longattn.attention(q, k, v, **options)
    out = out.reshape(*query.shape[:-1], value.shape[-1])
    return out if query.dtype == torch.float32 else out.to(query.dtype)


@torch.library.custom_op("longattn::scaled_dot_product_attention", mutates_args=())
def _op(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Optional[torch.Tensor],
        dropout_p: float, is_causal: bool, scale: Optional[float], enable_gqa: bool) -> torch.Tensor:
    return _attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


@_op.register_fake
def _(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    return query.new_empty((*query.shape[:-1], value.shape[-1]))
