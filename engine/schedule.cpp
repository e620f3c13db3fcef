#include "engine/schedule.hpp"

#include <algorithm>

namespace longattn::engine {
namespace {

// Partial outputs of split keys, all heads and splits of a call: at most this much, the
// splits made longer where there would be more.
constexpr std::int64_t kSplitPartialBudgetBytes = 16 << 20;

// Rows of a split's block up to which it reads the caller's keys and values in place instead
// of packing each tile for the register-blocked kernels; more at depths 96-128, where the
// in-place kernels fare best (bench/TUNING.md "Decoding rows read in place").
constexpr std::int64_t kRowsInPlace = 16;
constexpr std::int64_t kRowsInPlaceMidDepth = 24;

// Query blocks that each see at most 1 / kBandWidthRatio of a head's keys run in bands of at
// most kMaxBandBlocks blocks, about kBandTasksPerThread bands per thread (bench/TUNING.md
// "Bands").
constexpr std::int64_t kBandWidthRatio = 4;
constexpr std::int64_t kMaxBandBlocks = 32;
constexpr std::int64_t kBandTasksPerThread = 8;

// Softmax state carried between key chunks, for the heads packed in one round: 16 MiB holds
// 8 heads at n = 262144 and keeps n = 2^20 within the caller's tensors + 64 MiB.
constexpr std::int64_t kCarryBudgetBytes = 16 << 20;

constexpr std::int64_t kFloat = sizeof(float);

std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }

// Keys of one head's chunk that stay in L2 with their values: a whole number of tiles.
std::int64_t l2_keys(const ScheduleFacts& f) {
  const std::int64_t key_bytes = (f.key_depth + f.value_width) * kFloat;
  return std::max(f.block_keys, f.chunk_bytes / key_bytes / f.block_keys * f.block_keys);
}

// Splits of an L2 chunk each (32 per head at Nk = 65536, D = 128: tasks for every thread, few
// partials to merge); longer where the partials of all splits would outgrow their budget.
Schedule key_splits(const ScheduleFacts& f) {
  const AttentionShape& s = f.shape;
  Schedule schedule{.kind = ScheduleKind::key_splits};
  const std::int64_t nk = f.nk_padded();
  std::int64_t keys = l2_keys(f);
  const std::int64_t split_bytes =
      std::max<std::int64_t>(1, s.batch * s.q_heads * split_partial_floats(s.nq, f.dv_padded) * kFloat);
  const std::int64_t most = std::max<std::int64_t>(1, kSplitPartialBudgetBytes / split_bytes);
  if ((nk + keys - 1) / keys > most) keys = round_up((nk + most - 1) / most, f.block_keys);
  schedule.split_keys = keys;
  schedule.splits = (nk + keys - 1) / keys;
  // Stacked rows: each key and value row serves every query head of the group at once,
  // unless the heads' scores differ beyond q.
  schedule.stack_heads = !f.heads_differ;
  const std::int64_t rows = schedule.stack_heads ? s.group() * s.nq : s.nq;
  const bool mid_depth = f.score_depth >= 96 && f.score_depth <= 128;
  schedule.rows_in_place = rows <= (mid_depth ? kRowsInPlaceMidDepth : kRowsInPlace) && !f.keys_need_packing &&
                           f.rows_contiguous;
  return schedule;
}

// Enough tasks for every thread, few enough that repacking each task's first block stays
// small.
Schedule bands(const ScheduleFacts& f) {
  const std::int64_t heads = f.shape.batch * f.shape.kv_heads, q_blocks = f.q_blocks();
  const std::int64_t wanted_tasks = kBandTasksPerThread * f.threads;
  const std::int64_t wanted_bands = (wanted_tasks + heads - 1) / heads;
  Schedule schedule{.kind = ScheduleKind::bands};
  schedule.band_blocks = std::clamp<std::int64_t>((q_blocks + wanted_bands - 1) / wanted_bands, 1, kMaxBandBlocks);
  schedule.bands = (q_blocks + schedule.band_blocks - 1) / schedule.band_blocks;
  return schedule;
}

// Chunks of L2's size where a query block sees more than that, whole heads otherwise; as
// many heads at once as the packed budget (and the carried state's) allows.
Schedule chunks(const ScheduleFacts& f) {
  const AttentionShape& s = f.shape;
  const std::int64_t Bc = f.block_keys, nk = f.nk_padded(), heads = s.batch * s.kv_heads, l2 = l2_keys(f);
  const std::int64_t packed_key_bytes = (f.key_depth + (f.values_in_place ? 0 : f.value_width)) * kFloat;
  std::int64_t chunk_keys = std::max(f.panel_width, nk);
  if (l2 < chunk_keys && f.widest > l2) chunk_keys = l2;
  chunk_keys = std::min(chunk_keys, std::max(Bc, f.packed_budget_bytes / packed_key_bytes / Bc * Bc));
  const std::int64_t count = std::max<std::int64_t>(1, (nk + chunk_keys - 1) / chunk_keys);
  std::int64_t heads_at_once = std::clamp<std::int64_t>(f.packed_budget_bytes / (chunk_keys * packed_key_bytes), 1,
                                                        std::max<std::int64_t>(1, heads));
  if (count > 1) {  // the carried state (max and sum per query row and head) of a round, too
    const std::int64_t carry_bytes_per_head = 2 * s.group() * s.nq * kFloat;
    heads_at_once = std::min(heads_at_once, std::max<std::int64_t>(1, kCarryBudgetBytes / carry_bytes_per_head));
  }
  return Schedule{.kind = ScheduleKind::chunks, .chunk_keys = chunk_keys, .chunks = count,
                  .heads_at_once = heads_at_once};
}

}  // namespace

std::string to_string(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::key_splits: return "key_splits";
    case ScheduleKind::bands: return "bands";
    case ScheduleKind::chunks: return "chunks";
  }
  return "?";
}

std::int64_t split_partial_floats(std::int64_t nq, std::int64_t dv_padded) {
  constexpr std::int64_t kLineFloats = 64 / kFloat;
  return round_up(nq * (dv_padded + 2), kLineFloats);
}

Schedule choose_schedule(const ScheduleFacts& f) {
  // A single split too, where its blocks read rows in place: short caches then decode faster
  // than through packed chunks (bench/TUNING.md "Decoding rows read in place").
  if (queries_fit_one_block(f.shape, f.block_rows)) {
    const Schedule splits = key_splits(f);
    if (splits.splits > 1 || (splits.splits == 1 && splits.rows_in_place)) return splits;
  }
  // Heads whose keys all fit one chunk, at least kBandTasksPerThread per thread, run as bands
  // too, a whole head per band: each task packs its head into its own cache where the chunked
  // path would pack every head at once past the caches and read them back. Only where the
  // chunked path too would take each head whole and bands would tile it alike (no sink keys,
  // which bands run as a chunk of their own): the count of threads then picks between two
  // schedules that run the same tiles, and never changes a bit.
  const std::int64_t heads = f.shape.batch * f.shape.kv_heads;
  const Schedule chunked = chunks(f);
  const bool short_heads = f.nk_padded() <= l2_keys(f) && chunked.chunks == 1 && !f.sink_keys &&
                           heads >= kBandTasksPerThread * f.threads;
  if (f.widest * kBandWidthRatio <= f.nk_padded() || short_heads) return bands(f);
  return chunked;
}

}  // namespace longattn::engine
