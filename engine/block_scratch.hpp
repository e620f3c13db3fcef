// What a query block works in: its thread's scratch, its rows' online-softmax state, the keys
// it runs over and where its state comes from and goes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/aligned_buffer.hpp"
#include "engine/flash_plan.hpp"
#include "engine/window_plan.hpp"
#include "simd/prefetch.hpp"

namespace longattn::engine {

// Per-thread scratch: O(Br·Bc + Br·(D + Dv)) floats, never O(n²).
struct BlockScratch {
  AlignedBuffer q;       // [Br][D] queries copied, rotated, projected ([Br][Da]) or quantized, unless read in place
  AlignedBuffer quantized_q;  // decoding with int8 scores: the query rows quantized for an int8 cache's keys
  AlignedBuffer scores;  // [Br][Bc], scores then probabilities
  AlignedBuffer acc;     // [Br][Dv padded], unnormalized output
  AlignedBuffer rows;    // six per-row vectors of Br floats, see RowState
  AlignedBuffer diagonals;  // Br + Bc floats: the position bias of a tile along its diagonals
  std::vector<std::int32_t> bounds;  // [Br][2]: the keys each row of a masked tile sees
  std::vector<KeyRange> key_ranges;  // what the current query block sees
  std::vector<KeyRange> tiles;       // the key tiles it runs, in the order it runs them
  AlignedBuffer band;                // packed keys (and values) of the band or split tile a thread runs
  AlignedBuffer sinks;               // ... and of the sink keys a band sees apart from its window
  std::vector<float> carry;          // [2][Nq] rows' max and sum between the sink keys and the band
  simd::PrefetchQueue prefetch;      // rows of q, k, v, out of the thread's next query block
  std::int64_t computed_pairs = 0;   // scores this thread computed

  explicit BlockScratch(const FlashPlan& plan)
      : q(plan.block_rows * plan.query_row_floats()),
        quantized_q(plan.int8_rows != nullptr ? plan.block_rows * simd::int8_query_units(plan.shape.d) : 0),
        scores(plan.block_rows * plan.max_tile_keys()),
        acc(plan.block_rows * plan.dv_padded),
        rows(6 * plan.block_rows),
        diagonals(plan.bias.enabled() ? plan.block_rows + plan.max_tile_keys() : 0),
        bounds(static_cast<std::size_t>(2 * plan.block_rows)) {}

  std::int64_t bytes() const {
    const auto held = [](const auto& list) {
      return static_cast<std::int64_t>(list.capacity() * sizeof(list[0]));
    };
    return q.bytes() + quantized_q.bytes() + scores.bytes() + acc.bytes() + rows.bytes() + diagonals.bytes() + band.bytes() +
           sinks.bytes() + held(bounds) + held(key_ranges) + held(tiles) + held(carry);
  }
};

// The rows of one query block: where its queries and unnormalized output are, and their
// online-softmax state (log2 domain).
struct RowState {
  const float* q = nullptr;  // query rows, FlashInputs::query_units 4-byte units apart
  float* acc = nullptr;      // output rows, dv_padded floats apart
  float* max;        // running max of the scores seen so far
  float* sum;        // running Σ 2^(s - max)
  float* rescale;    // 2^(old max - new max) for the current tile
  float* shift;      // what the current tile's exponentials subtract
  float* tile_max;
  float* tile_sum;
  // A block of several query heads' rows stacked (split keys: a kv head's whole group at
  // once): row r is query i0 + r % queries_per_head. 0: one head, row r is query i0 + r.
  std::int64_t queries_per_head = 0;
  RowState(float* base, std::int64_t br)
      : max(base), sum(base + br), rescale(base + 2 * br), shift(base + 3 * br),
        tile_max(base + 4 * br), tile_sum(base + 5 * br) {}
};

// An int8 KvCache's rows as the decoding kernels read them (KeyPages): each row stands for
// its scale times its int8 values. Key `begin`'s row and scale first.
struct QuantizedRows {
  const std::int8_t* keys = nullptr;
  const float* key_scales = nullptr;
  const std::int8_t* values = nullptr;
  const float* value_scales = nullptr;
};

// Keys [begin, end) of one kv head: what a query block runs over. Packed, or (key_rows) the
// caller's rows read in place by the decoding kernels, in the inputs' element type KV, or
// (quantized) an int8 cache's rows read in place.
template <class KV>
struct KeyChunk {
  std::int64_t begin, end;
  const float* key_panels;    // panel of key `begin` first
  const float* value_rows;    // row of key `begin` first: the caller's fp32 v, or packed rows
  std::int64_t value_stride;  // elements from one value row to the next
  const KV* key_rows = nullptr;      // the caller's row of key `begin` (no panels, no value_rows)
  std::int64_t key_row_stride = 0;   // elements from one key row to the next
  const KV* caller_value_rows = nullptr;  // with key_rows: the caller's row of key `begin`
  QuantizedRows quantized = {};      // in place of key_rows and caller_value_rows

  bool quantized_rows() const { return quantized.keys != nullptr; }
  bool rows_in_place() const { return key_rows != nullptr || quantized_rows(); }
};

// Where a query block's running state comes from before a KeyChunk and goes after it.
struct Handoff {
  bool first, last;             // the first / last keys this query block sees
  float* carry;                 // [2][Nq] running max and sum between chunks, or null
  bool out_prefetched = false;  // the block's rows of out were fetched ahead: cached stores
  float* partial = nullptr;     // [Nq][dv_padded]: where the block's unnormalized output stays
};

}  // namespace longattn::engine
