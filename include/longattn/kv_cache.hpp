// A paged key-value cache for serving: keys and values of many sequences, each growing a few
// tokens at a time, kept in pages of a fixed number of tokens, and attention that reads those
// pages where they lie.
//
// A page holds `page_tokens` consecutive tokens of one sequence at one layer, every kv head's
// rows of them: keys [kv_heads][page_tokens][d], values [kv_heads][page_tokens][dv], and for
// int8 one fp32 scale per token and kv head of each. A sequence's page table lists its pages
// in order; forked sequences share their prefix's pages until one of them writes to a shared
// page (copy on write).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "longattn/bf16.hpp"
#include "longattn/export.hpp"
#include "longattn/options.hpp"
#include "longattn/positional.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn {

// How a cache stores keys and values:
// fp32  as given.
// bf16  rounded to the nearest bf16: half the bytes to read.
// int8  symmetric, x ≈ scale · q with q in [-127, 127] and scale = max |x| / 127 per token
//       and kv head (of keys and of values apart), quantized when appended: a quarter of the
//       bytes, plus 8 bytes of scales per token and kv head.
enum class CacheType { fp32, bf16, int8 };

LONGATTN_API std::string to_string(CacheType type);
LONGATTN_API CacheType parse_cache_type(const std::string& name);  // throws Error on an unknown name

struct KvCacheConfig {
  std::int64_t layers = 1, kv_heads = 1;
  std::int64_t d = 0;
  std::int64_t dv = 0;  // 0: the same as d
  std::int64_t page_tokens = 64;  // a power of two, 16 … 256
  CacheType type = CacheType::fp32;
  // RoPE of the keys, applied once as they are appended (at their position in the sequence);
  // cached_attention rotates the queries to match.
  Rope rope;
};

// What the cache holds.
struct KvCacheMemory {
  std::int64_t pages = 0;            // pages in use (a page shared by forks counts once)
  std::int64_t page_bytes = 0;       // bytes of one page
  std::int64_t bytes = 0;            // pages · page_bytes
  // The memory the cache holds: slabs of 2 MiB huge pages cut into pages, in use or free. A
  // slab goes back to the system when none of its pages is in use.
  std::int64_t reserved_bytes = 0;
  std::int64_t tokens = 0;           // tokens of every live sequence and layer (shared ones per sequence)
  std::int64_t bytes_per_token = 0;  // of keys, values and scales, one token at every layer
};

using SequenceId = std::int64_t;

class LONGATTN_API KvCache {
 public:
  explicit KvCache(const KvCacheConfig& config);  // Error naming a bad field
  ~KvCache();
  KvCache(KvCache&&) noexcept;
  KvCache& operator=(KvCache&&) noexcept;

  const KvCacheConfig& config() const;

  // A new, empty sequence.
  SequenceId add_sequence();
  // A new sequence holding what `parent` holds now, sharing its pages.
  SequenceId fork(SequenceId parent);
  // Frees the sequence's pages that no other sequence shares; its id is then invalid.
  void drop(SequenceId sequence);

  // Appends k [1, kv_heads, T, d] and v [1, kv_heads, T, dv] (any strides) to the sequence's
  // `layer`, at positions length() … length() + T - 1. Everything is checked before anything
  // is written: on an Error (a dropped sequence, a bad shape, a non-finite value for an int8
  // cache) the cache is unchanged.
  void append(SequenceId sequence, std::int64_t layer, HeadsView<const float> k, HeadsView<const float> v);
  void append(SequenceId sequence, std::int64_t layer, HeadsView<const bf16> k, HeadsView<const bf16> v);

  // Tokens the sequence holds at `layer`.
  std::int64_t length(SequenceId sequence, std::int64_t layer) const;
  bool contains(SequenceId sequence) const;
  KvCacheMemory memory() const;

  // Keys and values [1, kv_heads, length, d|dv] of a sequence's layer as fp32, dequantized:
  // what cached_attention reads, for tests and inspection.
  void read(SequenceId sequence, std::int64_t layer, HeadsView<float> k, HeadsView<float> v) const;

  struct Impl;
  const Impl& impl() const;

 private:
  std::unique_ptr<Impl> impl_;
};

// Attention of new queries against the cached keys of a batch of sequences, in one call:
// q [S, q_heads, nq, d] are the last nq tokens of each sequence (appended before the call), at
// positions length - nq … length - 1, and out [S, q_heads, nq, dv] their output; lse [S,
// q_heads, nq] optional. nq = 1 decodes; more is a chunk of prefill against the cached prefix
// and itself (options.window = Window::causal() for causal prefill). The sequences may differ
// in length. The cache's RoPE rotates the queries. Options as attention()'s, except those tied
// to tensors the cache replaces: key_lengths, mask, block_sparse, additive, score_bias,
// cu_seqlens, positions, rope (Error naming them). Decoding reads each page where it lies (an
// int8 tile dequantized into the thread's cache); a chunk whose queries are too many for
// that reads its sequence's pages into one scratch copy, a pass of nk rows against nq of work.
// Results are those of attention() on the same keys and values as read() returns them, bit for
// bit.
LONGATTN_API AttentionStats cached_attention(const KvCache& cache, std::int64_t layer,
                                             std::span<const SequenceId> sequences, HeadsView<const float> q,
                                             HeadsView<float> out, const AttentionOptions& options = {},
                                             TensorView<float, 3> lse = {});

// The same with bf16 queries, widened to fp32 as they are read (the fp32 call's result on the
// widened q, bit for bit), and with a bf16 out: the fp32 result rounded to the nearest bf16
// (ties to even) as attention()'s bf16 out is, computed into an fp32 copy of out's shape
// first (in stats.scratch_bytes), so out is written once, whole, after everything else
// succeeded.
LONGATTN_API AttentionStats cached_attention(const KvCache& cache, std::int64_t layer,
                                             std::span<const SequenceId> sequences, HeadsView<const bf16> q,
                                             HeadsView<float> out, const AttentionOptions& options = {},
                                             TensorView<float, 3> lse = {});
LONGATTN_API AttentionStats cached_attention(const KvCache& cache, std::int64_t layer,
                                             std::span<const SequenceId> sequences, HeadsView<const float> q,
                                             HeadsView<bf16> out, const AttentionOptions& options = {},
                                             TensorView<float, 3> lse = {});
LONGATTN_API AttentionStats cached_attention(const KvCache& cache, std::int64_t layer,
                                             std::span<const SequenceId> sequences, HeadsView<const bf16> q,
                                             HeadsView<bf16> out, const AttentionOptions& options = {},
                                             TensorView<float, 3> lse = {});

}  // namespace longattn
