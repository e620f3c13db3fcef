// The streaming-softmax driver (FlashAttention-2 on a CPU, DESIGN.md §3).
#pragma once

#include <cstdint>

#include "engine/attention_validation.hpp"
#include "engine/positional_encoding.hpp"
#include "engine/visibility_plan.hpp"
#include "longattn/options.hpp"
#include "longattn/tensor_view.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::engine {

// Everything decided before the first FLOP: validated once, executed by run().
struct FlashPlan {
  AttentionShape shape;
  VisibilityPlan visibility;
  Normalizer normalizer;  // softmax, sigmoid or relu (linear attention has its own driver)
  // scale · log2(e) for softmax, which runs on exp2; scale otherwise. Folded into the packed
  // keys, packed once per head or chunk, so queries are read as they are.
  float key_scale;
  float sigmoid_bias;
  AdditiveScoring additive;  // enabled: scores are wᵀ tanh(Wq q + Wk k) instead of q·k
  std::int64_t score_depth;  // features per packed key: D, or Da for additive scores
  float score_scale;         // additive scores are multiplied by this (log2 e for softmax)
  RotaryTable rope;          // enabled: q and k rotated as they are copied and packed
  PositionBias bias;         // enabled: ALiBi / relative bias added to every score tile
  const simd::KernelTable* kernels;
  // The bf16 products, for q, k and v all in bf16 (null: widened): where options ask for them,
  // the CPU has them and the plan needs nothing they lack (additive scores project fp32 rows;
  // the decoding kernels, for a few queries per kv head, read rows in place). RoPE rotates
  // q and k in fp32 and rounds them back to bf16.
  const simd::Bf16DotKernels* bf16_dot;
  std::int64_t block_rows;  // Br: query rows per work unit
  std::int64_t block_keys;  // Bc: keys per tile, a multiple of the panel width
  // The last tile of a run of keys takes up to Bc / 2 more rather than leave a small one:
  // a (256, 256) window's 384 keys seen by all rows of a block in one tile, not 256 + 128.
  std::int64_t max_tile_keys() const { return block_keys + block_keys / 2; }
  std::int64_t dv_padded;   // Dv rounded up to whole vectors
  std::int64_t packed_budget_bytes;  // packed K/V held at once (several heads' key chunks)
  std::int64_t chunk_bytes;          // packed K/V of one head's key chunk: sized for L2
  int threads;              // 0 = TBB's default
};

FlashPlan make_flash_plan(const AttentionShape& shape, const AttentionOptions& options);

// Runs the plan; q, k, v, out, lse must be the views it was validated with. Q, KV: float and
// float, bf16 and bf16, or float and bf16.
template <class Q, class KV>
AttentionStats run_flash_attention(const FlashPlan& plan, const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                   const HeadsView<const KV>& v, const HeadsView<float>& out,
                                   const TensorView<float, 3>& lse);

}  // namespace longattn::engine
