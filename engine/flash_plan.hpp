// What the streaming-softmax driver decides before the first FLOP (DESIGN.md §3): the kernels,
// the tile sizes, the scale folded into the keys, the position terms. Made once per shape and
// options, then run any number of times.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/attention_validation.hpp"
#include "engine/positional_encoding.hpp"
#include "engine/visibility_plan.hpp"
#include "longattn/options.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::engine {

// Br, the query rows of a work unit (flash_plan.cpp says why).
inline constexpr std::int64_t kQueryBlockRows = 96;

struct FlashPlan {
  AttentionShape shape;
  VisibilityPlan visibility;
  Normalizer normalizer;  // softmax, sigmoid or relu (linear attention has its own driver)
  // scale · log2(e) for softmax, which runs on exp2; scale otherwise. Folded into the packed
  // keys, packed once per head or chunk, so queries are read as they are.
  float key_scale;
  // What fp32 key panels are scaled by: key_scale, times soft-capping's exponent factor
  // (kSoftcapExponent / softcap), so that the QKᵀ kernels' products are the cap's exponent and
  // capping takes one multiply fewer per 16 scores (simd::ScoreTerms). Keys read in place,
  // bf16 pairs and projected keys keep key_scale.
  float packed_key_scale;
  float sigmoid_bias;
  AdditiveScoring additive;  // enabled: scores are wᵀ tanh(Wq q + Wk k) instead of q·k
  std::int64_t score_depth;  // features per packed key: D, or Da for additive scores
  float score_scale;         // additive scores and the score bias are multiplied by this (log2 e for softmax)
  // Query i sits at key position i + query_offset (Positions): RoPE turns q there, k at j.
  std::int64_t query_offset;
  RotaryTable rope;          // enabled: q and k rotated as they are copied and packed
  PositionBias bias;         // enabled: ALiBi / relative bias added to every score tile
  TensorView<const float, 4> score_bias;  // the caller's [B, Hq, Nq, Nk] bias (empty: none)
  float softcap;             // scores capped at ±softcap in the kernel's units (0: none)
  std::vector<float> sinks;  // [Hq] sink logits in the kernel's units (empty: none)
  const simd::KernelTable* kernels;
  // The bf16 products, for q, k and v all in bf16 (null: widened): where options ask for them,
  // the CPU has them and the plan needs nothing they lack (additive scores project fp32 rows;
  // the decoding kernels, for a few queries per kv head, read rows in place). RoPE rotates
  // q and k in fp32 and rounds them back to bf16.
  const simd::Bf16DotKernels* bf16_dot;
  // The int8 scores (QkPrecision::int8; null: none): where options ask for them and the plan
  // packs keys (a few queries per kv head read them in place, as inputs). P·V in bf16 pairs
  // where they store probabilities in bf16.
  const simd::Int8DotKernels* int8_dot;
  // The same where queries are few per kv head (decoding): q·k against an int8 cache's rows
  // read in place then runs on int8 queries (Int8DotKernels::qk_rows); null otherwise.
  const simd::Int8DotKernels* int8_rows;
  std::int64_t block_rows;  // Br: query rows per work unit
  std::int64_t block_keys;  // Bc: keys per tile, a multiple of the panel width
  std::int64_t widest_keys;  // keys one query block sees at most (what the schedule packs for)
  std::int64_t dv_padded;   // Dv rounded up to whole vectors
  std::int64_t packed_budget_bytes;  // packed K/V held at once (several heads' key chunks)
  std::int64_t chunk_bytes;          // packed K/V of one head's key chunk: sized for L2
  int threads;                       // 0 = TBB's default

  // The last tile of a run of keys takes up to Bc / 2 more rather than leave a small one:
  // a (256, 256) window's 384 keys seen by all rows of a block in one tile, not 256 + 128.
  std::int64_t max_tile_keys() const { return block_keys + block_keys / 2; }

  // Floats of a query row in a block's scratch: copied, rotated or projected; int8 rows, then
  // the fp32 rows they are quantized from.
  std::int64_t query_row_floats() const {
    const std::int64_t copied = std::max(shape.d, score_depth);
    return int8_dot != nullptr ? simd::int8_query_units(shape.d) + copied : copied;
  }
};

FlashPlan make_flash_plan(const AttentionShape& shape, const AttentionOptions& options);

}  // namespace longattn::engine
