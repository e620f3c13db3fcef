# The engine module's types, for editors and type checkers (longattn's functions wrap it).
from typing import Any, Optional

__version__: str

class Error(ValueError): ...

class Options:
    window_left: int
    window_right: int
    scale: Optional[float]
    sigmoid_bias: Optional[float]
    key_lengths: Optional[Any]
    mask: Optional[Any]
    relative_bias: Optional[Any]
    score_bias: Optional[Any]
    block_q: int
    block_k: int
    visible_blocks: Optional[Any]
    additive_wq: Optional[Any]
    additive_wk: Optional[Any]
    additive_w: Optional[Any]
    softcap: Optional[float]
    sinks: Optional[Any]
    sink_keys: int
    cu_seqlens_q: Optional[Any]
    cu_seqlens_k: Optional[Any]
    normalizer: str
    rope: str
    rope_base: float
    alibi: bool
    isa: str
    bf16_products: str
    qk_precision: str
    threads: int
    query_start: Optional[int]
    key_start: int
    def __init__(self) -> None: ...

class AttentionStats:
    flops: float
    visible_pairs: int
    scratch_bytes: int
    isa: str
    bf16_products: bool
    qk_int8: bool

def attention(q: Any, k: Any, v: Any, out: Any, lse: Optional[Any], options: Options, bf16_bits: bool) -> AttentionStats: ...

class AttentionPlan:
    def __init__(self, batch: int, q_heads: int, kv_heads: int, nq: int, nk: int, d: int, dv: int,
                 bf16_queries: bool, bf16_kv: bool, options: Options) -> None: ...
    def run(self, q: Any, k: Any, v: Any, out: Any, lse: Optional[Any], bf16_bits: bool) -> AttentionStats: ...

def isa() -> str: ...

class MultiHeadSelfAttention:
    def __init__(self, embed_dim: int, heads: int, kv_heads: int, head_dim: int, positions: str, options: Options,
                 weights: dict, precision: str) -> None: ...
    def forward(self, x: Any, out: Any) -> None: ...

class KvCache:
    def __init__(self, layers: int, kv_heads: int, d: int, dv: int, page_tokens: int, type: str, rope: str,
                 rope_base: float) -> None: ...
    def add_sequence(self) -> int: ...
    def fork(self, parent: int) -> int: ...
    def drop(self, sequence: int) -> None: ...
    def contains(self, sequence: int) -> bool: ...
    def length(self, sequence: int, layer: int) -> int: ...
    def memory(self) -> dict: ...
    def append(self, sequence: int, layer: int, k: Any, v: Any, bf16_bits: bool) -> None: ...
    def read(self, sequence: int, layer: int) -> tuple: ...
    def attention(self, layer: int, sequences: Any, q: Any, out: Any, lse: Optional[Any],
                  options: Options, bf16_bits: bool) -> AttentionStats: ...
