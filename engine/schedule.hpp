// How a plan's work is cut into tasks: a pure function of the shape and a few facts about the
// inputs, so that which shapes get which schedule can be tested on its own.
//
// key_splits  A kv head's queries are few (decoding: its whole group fits one query block):
//             its keys are split into tasks of their own whose partial outputs merge by their
//             row max and sum (split-K, FlashDecoding's scheme on a CPU).
// bands       Query blocks that each see a narrow band of the keys (a window), or many heads
//             whose keys all fit one chunk: a task packs the keys its consecutive blocks newly
//             see just before running them, into a buffer of its own.
// chunks      Everything else: keys packed a chunk at a time that stays in L2 while every
//             query block of the head passes over it, each block carrying its softmax state
//             from chunk to chunk.
#pragma once

#include <cstdint>
#include <string>

#include "engine/attention_validation.hpp"

namespace longattn::engine {

enum class ScheduleKind { key_splits, bands, chunks };

std::string to_string(ScheduleKind kind);

// What the choice depends on, in 4-byte units where it counts floats.
struct ScheduleFacts {
  AttentionShape shape;
  std::int64_t block_rows = 0, block_keys = 0, panel_width = 0;
  std::int64_t key_depth = 0;    // 4-byte units per packed key: D, Da, or ⌈D / 2⌉ bf16 pairs
  std::int64_t value_width = 0;  // 4-byte units per packed value row
  std::int64_t dv_padded = 0;    // floats per output row of a partial
  std::int64_t score_depth = 0;  // features per score: D, or Da for additive scores
  std::int64_t chunk_bytes = 0, packed_budget_bytes = 0;
  std::int64_t widest = 0;      // keys one query block sees at most
  int threads = 1;              // threads the run may use
  bool values_in_place = false;  // value rows read where they lie, not packed beside the keys
  bool heads_differ = false;     // a position bias or additive scores differ per query head
  bool keys_need_packing = false;  // RoPE or additive scores transform keys before use
  bool rows_contiguous = false;    // k's and v's features lie contiguously
  bool sink_keys = false;          // sink keys beside a window: bands run them as a chunk of their own

  std::int64_t nk_padded() const { return (shape.nk + panel_width - 1) / panel_width * panel_width; }
  std::int64_t q_blocks() const { return (shape.nq + block_rows - 1) / block_rows; }
};

struct Schedule {
  ScheduleKind kind = ScheduleKind::chunks;
  // key_splits: keys per split (a multiple of Bc) and splits per kv head; whether a split runs
  // its kv head's whole group as one block of stacked rows, and reads rows where they lie.
  std::int64_t split_keys = 0, splits = 0;
  bool stack_heads = false, rows_in_place = false;
  // bands: query blocks per band, bands per kv head.
  std::int64_t band_blocks = 0, bands = 0;
  // chunks: keys per chunk, chunks per head, kv heads packed at once.
  std::int64_t chunk_keys = 0, chunks = 0, heads_at_once = 0;

  bool operator==(const Schedule&) const = default;
};

Schedule choose_schedule(const ScheduleFacts& facts);

// Whether a kv head's queries are few, its whole group within one query block (decoding, a few
// new tokens against a long cache): its keys are then split across tasks.
inline bool queries_fit_one_block(const AttentionShape& shape, std::int64_t block_rows) {
  return shape.group() * shape.nq <= block_rows;
}

// Floats of one query head's partial output for one split: [Nq][dv_padded] unnormalized
// output, then Nq row maxima and Nq row sums, rounded up to whole cache lines so that every
// partial's rows start on a line.
std::int64_t split_partial_floats(std::int64_t nq, std::int64_t dv_padded);

}  // namespace longattn::engine
