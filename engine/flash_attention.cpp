#include "engine/flash_attention.hpp"

#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <type_traits>
#include <vector>

#include "engine/aligned_buffer.hpp"
#include "engine/input_elements.hpp"
#include "engine/key_value_packing.hpp"
#include "engine/thread_arena.hpp"
#include "simd/denormals.hpp"
#include "simd/prefetch.hpp"

namespace longattn::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Softmax state carried between key chunks, for the heads packed in one round: 16 MiB holds
// 8 heads at n = 262144 and keeps n = 2^20 within the caller's tensors + 64 MiB.
constexpr std::int64_t kCarryBudgetBytes = 16 << 20;

// Partial tiles are run in slices of this many query rows, each over the panels its rows can
// see, so a window's edges and the causal diagonal waste fewer masked scores. Measured on a
// (256, 256) window, n = 16384: slices of 6 / 12 / 24 / 48 / 96 rows gave 108–119 / 116–120 /
// 113–117 / 114–115 / 110 GFLOP/s. A multiple of every target's row group (6 and 4).
constexpr std::int64_t kSliceRows = 12;

// A tile run against its rows' running max (no tile max) keeps each row's probabilities at
// most this large (2^20, a row max stale by at most 20 in log2 units): the output and sums
// stay far from overflow for any sequence length; past it, the tile is taken again with
// its max.
constexpr float kLazySumLimit = 1 << 20;

// Partial outputs of split keys (FlashRunner::run_key_splits), all heads and splits of a
// call: at most this much, the splits made longer where there would be more.
constexpr std::int64_t kSplitPartialBudgetBytes = 16 << 20;

// Rows of a split-keys block up to which it reads the caller's keys and values in place
// (simd qk_rows / pv_rows, each row once, in order) instead of packing each tile for the
// register-blocked kernels; more at depths 96-128, where the in-place key blocks fare best.
// In place against packed (Nk = 32768 or 65536, 1 thread, one process alternating them,
// medians of 10-12; Zen 3, AVX2): 12 / 16 rows 1.26x / 1.22x at D = 128, 16 rows 1.05-1.18x
// at D = 64; 24 rows 1.11-1.21x at D = 128 (1.06-1.08x on 2 threads), 1.04x at D = 96,
// 0.93x at D = 80, 0.97x at D = 64, 0.91x at D = 256; 32 rows 0.96-1.02x at D = 128, 0.89x at
// D = 64; 48 rows 0.87x.
constexpr std::int64_t kRowsInPlace = 16;
constexpr std::int64_t kRowsInPlaceMidDepth = 24;

// Query blocks that each see at most 1 / kBandWidthRatio of a head's keys are run in bands
// (FlashRunner::run_bands) of at most kMaxBandBlocks blocks, about kBandTasksPerThread
// bands per thread.
constexpr std::int64_t kBandWidthRatio = 4;
constexpr std::int64_t kMaxBandBlocks = 32;
constexpr std::int64_t kBandTasksPerThread = 8;

// Whether a kv head's queries are few, its whole group within one query block (decoding, a few
// new tokens against a long cache): its keys are then split (FlashRunner::plan_key_splits).
bool queries_fit_one_block(const AttentionShape& shape, std::int64_t block_rows) {
  return shape.group() * shape.nq <= block_rows;
}

// Whether the rows of a [B, H, N, width] view lie back to back as whole, cache-line aligned
// rows of `padded` floats (BHND, width a whole number of vectors): the micro-kernels can then
// read or write them where they are, as their own packed rows.
template <class T>
bool rows_lie_packed(const HeadsView<T>& view, std::int64_t width, std::int64_t padded) {
  return width == padded && view.strides[3] == 1 && view.strides[2] == padded &&
         reinterpret_cast<std::uintptr_t>(view.data) % 64 == 0 && view.strides[1] % 16 == 0 &&
         view.strides[0] % 16 == 0;
}

// Per-thread scratch: O(Br·Bc + Br·(D + Dv)) floats, never O(n²).
struct BlockScratch {
  AlignedBuffer q;       // [Br][D] queries copied, rotated or projected ([Br][Da]), unless read in place
  AlignedBuffer scores;  // [Br][Bc], scores then probabilities
  AlignedBuffer acc;     // [Br][Dv padded], unnormalized output
  AlignedBuffer rows;    // six per-row vectors of Br floats, see RowState
  AlignedBuffer diagonals;  // Br + Bc floats: the position bias of a tile along its diagonals
  std::vector<std::int32_t> bounds;  // [Br][2]: the keys each row of a masked tile sees
  std::vector<KeyRange> key_ranges;  // what the current query block sees
  std::vector<KeyRange> tiles;       // the key tiles it runs, in the order it runs them
  AlignedBuffer band;                // packed keys (and values) of the band a thread runs
  simd::PrefetchQueue prefetch;      // rows of q, k, v, out of the thread's next query block
  std::int64_t computed_pairs = 0;   // scores this thread computed

  BlockScratch(const FlashPlan& plan)
      : q(plan.block_rows * std::max(plan.shape.d, plan.score_depth)),
        scores(plan.block_rows * plan.max_tile_keys()),
        acc(plan.block_rows * plan.dv_padded),
        rows(6 * plan.block_rows),
        diagonals(plan.bias.enabled() ? plan.block_rows + plan.max_tile_keys() : 0),
        bounds(static_cast<std::size_t>(2 * plan.block_rows)) {}
  std::int64_t bytes() const {
    const auto held = [](const auto& list) {
      return static_cast<std::int64_t>(list.capacity() * sizeof(list[0]));
    };
    return q.bytes() + scores.bytes() + acc.bytes() + rows.bytes() + diagonals.bytes() + band.bytes() +
           held(bounds) + held(key_ranges) + held(tiles);
  }
};

// The rows of one query block: where its queries and unnormalized output are, and their
// online-softmax state (log2 domain).
struct RowState {
  const float* q = nullptr;  // query rows, score_depth floats apart
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

// Runs a plan on queries of element type Q and keys and values of type KV: fp32, whose rows
// the kernels may read where they lie, or bf16, widened to fp32 wherever the engine copies or
// packs rows (queries, key panels, value rows) and by the decoding kernels as they load the
// caller's key and value rows, so that every path computes on the widened numbers.
template <class Q, class KV>
class FlashRunner {
 public:
  FlashRunner(const FlashPlan& plan, const HeadsView<const Q>& q, const HeadsView<const KV>& k,
              const HeadsView<const KV>& v, const HeadsView<float>& out, const TensorView<float, 3>& lse)
      : plan_(plan), q_(q), k_(k), v_(v), out_(out), lse_(lse),
        pairs_(kBf16Inputs ? plan.bf16_dot : nullptr),
        layout_{plan.shape.nk, pairs_ != nullptr ? (plan.shape.d + 1) / 2 : plan.score_depth, plan.shape.dv,
                plan.kernels->panel_width, plan.dv_padded},
        value_width_(pairs_ != nullptr ? plan.dv_padded / 2 : plan.dv_padded),
        q_rows_back_to_back_(q.strides[3] == 1 && q.strides[2] == plan.shape.d),
        out_rows_like_acc_(rows_lie_packed(out, plan.shape.dv, plan.dv_padded)) {}

  AttentionStats run() {
    const AttentionShape& s = plan_.shape;
    const std::int64_t D = layout_.d, W = value_width_, Bc = plan_.block_keys;
    const std::int64_t P = layout_.panel_width;
    // A head's value rows that lie back to back as whole, cache-line aligned vectors (BHND,
    // Dv a multiple of the vector) are read where they are; others are packed into rows of
    // dv_padded floats beside the keys. A vector load split across two lines costs two (in
    // place with unaligned v ran 6 % slower than packed), and rows far apart (6 KiB, as the
    // layer's Q|K|V were) leave every line and page half used (the layer ran 1.28x its parts).
    const bool values_in_place = kReadInPlace<KV> && rows_lie_packed(v_, s.dv, W);
    const std::int64_t key_bytes = (D + W) * static_cast<std::int64_t>(sizeof(float));  // what a chunk keeps in L2
    const std::int64_t packed_key_bytes = (D + (values_in_place ? 0 : W)) * static_cast<std::int64_t>(sizeof(float));
    const std::int64_t heads = s.batch * s.kv_heads;

    // Packed keys and values of a kv head are read by every one of its query blocks. Streamed
    // from memory block after block they cost 16 % of the time at D = 64, 30 % at D = 128
    // (bench tile_pipeline, kv_tiles 1 vs 256). So keys are packed a chunk at a time that stays
    // in L2 while all the head's query blocks pass over it, each block carrying its softmax
    // state from chunk to chunk (in `out` and `carry`); the same mechanism bounds the engine's
    // memory at any n. Chunks of several heads are packed at once, within the budget, so that
    // every thread has work. Query blocks that each see a narrow band of the keys (a window)
    // are run in bands instead (run_bands), their keys packed as they are needed.
    const std::int64_t q_blocks = (s.nq + plan_.block_rows - 1) / plan_.block_rows;
    std::int64_t widest = 0;  // keys one query block may see at most
    for (std::int64_t b = 0; b < (plan_.visibility.depends_on_batch() ? s.batch : 1); ++b) {
      for (std::int64_t qb = 0; qb < q_blocks; ++qb) {
        const std::int64_t i0 = qb * plan_.block_rows;
        widest = std::max(widest, plan_.visibility.hull(b, i0, std::min(s.nq, i0 + plan_.block_rows)).size());
      }
    }
    tbb::enumerable_thread_specific<BlockScratch> scratch([&] { return BlockScratch(plan_); });
    const std::int64_t l2_keys = std::max(Bc, plan_.chunk_bytes / key_bytes / Bc * Bc);
    // A single split too, where its blocks read rows in place: short caches then decode 1.6-3x
    // as fast as through packed chunks (Nk = 200-1000, 1 / 8 / 64 query heads per kv head). With
    // blocks of 64-96 rows, packed, it ran at 0.75-0.93x (one task, where the chunked path's
    // units kept both threads busy).
    if (const KeySplits splits = plan_key_splits(l2_keys);
        splits.count > 1 || (splits.count == 1 && splits_read_rows_in_place())) {
      return run_key_splits(scratch, splits);
    }
    // Heads whose keys all fit one chunk, at least kBandTasksPerThread per thread so that a
    // band is a whole head (BERT-like shapes: many heads of a few hundred tokens), run as bands
    // too: each task packs its head into its own cache and runs every query block over it,
    // where the chunked path would pack every head at once past the caches and read them back.
    // A block computes the same bits either way. 32 x 12 heads, D = 64, 1 thread: n = 128 /
    // 256 / 512 / 1024 1.23x / 1.05x / 1.16x / 1.03x (n = 256 on 2 threads 1.16x), n = 2048
    // 1.01x.
    const bool short_heads = layout_.nk_padded() <= l2_keys &&
                             heads >= kBandTasksPerThread * tbb::this_task_arena::max_concurrency();
    if (widest * kBandWidthRatio <= layout_.nk_padded() || short_heads) {
      run_bands(scratch, q_blocks, values_in_place);
      return stats_of(scratch, 0);
    }

    std::int64_t chunk_keys = std::max(P, layout_.nk_padded());
    if (l2_keys < chunk_keys && widest > l2_keys) chunk_keys = l2_keys;
    chunk_keys = std::min(chunk_keys, std::max(Bc, plan_.packed_budget_bytes / packed_key_bytes / Bc * Bc));
    const std::int64_t chunks = std::max<std::int64_t>(1, (layout_.nk_padded() + chunk_keys - 1) / chunk_keys);
    std::int64_t heads_at_once = std::clamp<std::int64_t>(plan_.packed_budget_bytes / (chunk_keys * packed_key_bytes), 1,
                                                          std::max<std::int64_t>(1, heads));
    if (chunks > 1) {  // the carried state (max and sum per query row and head) of a round, too
      const std::int64_t carry_bytes_per_head = 2 * s.group() * s.nq * static_cast<std::int64_t>(sizeof(float));
      heads_at_once = std::min(heads_at_once, std::max<std::int64_t>(1, kCarryBudgetBytes / carry_bytes_per_head));
    }
    const std::int64_t chunk_floats = chunk_keys * packed_key_bytes / static_cast<std::int64_t>(sizeof(float));
    PooledBuffer packed(heads_at_once * chunk_floats);
    // [head of the round][query head of its group][max, sum][Nq]
    AlignedBuffer carry(chunks > 1 ? 2 * heads_at_once * s.group() * s.nq : 0);

    // The chunks each query block needs: from the first to the last key it may see.
    const std::int64_t span_batches = plan_.visibility.depends_on_batch() ? s.batch : 1;
    std::vector<std::array<std::int64_t, 2>> chunk_span(static_cast<std::size_t>(span_batches * q_blocks));
    tbb::parallel_for(std::int64_t{0}, span_batches * q_blocks, [&](std::int64_t cell) {
      std::vector<KeyRange> ranges;
      const std::int64_t i0 = cell % q_blocks * plan_.block_rows;
      plan_.visibility.key_ranges(cell / q_blocks, i0, std::min(s.nq, i0 + plan_.block_rows), ranges);
      chunk_span[cell] = ranges.empty() ? std::array<std::int64_t, 2>{0, 0}
                                        : std::array<std::int64_t, 2>{ranges.front().begin / chunk_keys,
                                                                      (ranges.back().end - 1) / chunk_keys};
    });

    constexpr std::int64_t kPanelsPerTask = 16;
    for (std::int64_t first = 0; first < heads; first += heads_at_once) {
      const std::int64_t count = std::min(heads_at_once, heads - first);
      for (std::int64_t c = 0; c < chunks; ++c) {
        const std::int64_t p_begin = c * chunk_keys / P;
        const std::int64_t p_end = std::min(layout_.panels(), (c + 1) * chunk_keys / P);
        const std::int64_t tasks_per_head = (p_end - p_begin + kPanelsPerTask - 1) / kPanelsPerTask;
        tbb::parallel_for(std::int64_t{0}, count * tasks_per_head, [&](std::int64_t task) {
          const std::int64_t local = task / tasks_per_head, head = first + local;
          const std::int64_t p0 = p_begin + (task % tasks_per_head) * kPanelsPerTask;
          const std::int64_t p1 = std::min(p_end, p0 + kPanelsPerTask);
          float* keys = packed.data() + local * chunk_floats;
          pack_panels(head, p0, p1, keys + (p0 - p_begin) * P * D,
                      values_in_place ? nullptr : keys + chunk_keys * D + (p0 - p_begin) * P * W,
                      PanelStores::streamed);
        });
        // Work units are (kv head, query head of its group, query block): partitioned by
        // data alone, so every output element is computed the same way for any thread count.
        const std::int64_t units = count * s.group() * q_blocks;
        tbb::parallel_for(
            tbb::blocked_range<std::int64_t>(0, units, 1),
            [&](const tbb::blocked_range<std::int64_t>& range) {
              const simd::DenormalsFlushed flushed;
              for (std::int64_t unit = range.begin(); unit != range.end(); ++unit) {
                const std::int64_t qb = unit % q_blocks, in_group = unit / q_blocks % s.group();
                const std::int64_t local = unit / q_blocks / s.group(), head = first + local;
                const std::int64_t b = head / s.kv_heads;
                const auto [first_chunk, last_chunk] = chunk_span[(span_batches > 1 ? b : 0) * q_blocks + qb];
                if (c < first_chunk || c > last_chunk) continue;
                // The next query block's rows of q and out (from memory: a head's rows outgrow
                // L2) are fetched while this one runs, where q's rows lie back to back: full
                // attention 1.016x as fast at D = 64, 1.034x at D = 128 (n = 16384, paired).
                // Rows far apart (6 KiB, as the layer's Q|K|V were before it projected
                // head-major) ran slower with it (1.01-1.06x the time): left to the hardware.
                BlockScratch& mine = scratch.local();
                mine.prefetch.clear();
                if (qb + 1 < q_blocks && q_rows_back_to_back_) {
                  queue_rows(mine.prefetch, b, (head % s.kv_heads) * s.group() + in_group, (qb + 1) * plan_.block_rows);
                }
                const float* keys = packed.data() + local * chunk_floats;
                const float* values = values_in_place ? row_in_place(v_, b, head % s.kv_heads, c * chunk_keys)
                                                      : keys + chunk_keys * D;
                const KeyChunk chunk{c * chunk_keys, (c + 1) * chunk_keys, keys, values,
                                     values_in_place ? v_.strides[2] : W};
                const Handoff handoff{c == first_chunk, c == last_chunk,
                                      carry.data() == nullptr ? nullptr
                                                              : carry.data() + 2 * (local * s.group() + in_group) * s.nq};
                run_block(mine, b, (head % s.kv_heads) * s.group() + in_group, qb * plan_.block_rows, chunk, handoff);
              }
            },
            tbb::simple_partitioner());
      }
    }

    return stats_of(scratch, packed.bytes() + carry.bytes() +
                                 static_cast<std::int64_t>(chunk_span.size() * sizeof(chunk_span[0])));
  }

 private:
  // Split keys (split-K, FlashDecoding's scheme on a CPU): when a kv head's queries are few,
  // at most one query block over its whole group (decoding, a few new tokens against a long
  // cache), its keys are cut into splits that run as tasks of their own, each leaving partial
  // outputs that merge_splits combines by their row max and sum. A task takes its split tile
  // by tile, every query of the group over each tile while it is in cache, the rows read in
  // order (run_key_splits). Packing a head once for all its query blocks had nothing to
  // amortize there: the chunked path read each key three times from memory (packed, stored
  // past the caches, read back) and its (head, query block) units left threads idle when
  // heads are few.
  struct KeySplits {
    std::int64_t keys = 0, count = 0;  // keys per split (a multiple of Bc), splits per head
  };
  // Splits of the chunked path's chunk (chunk_keys: 1 MiB of keys and values), 32 per head at
  // Nk = 65536, D = 128: tasks enough for every thread, few partials to merge; longer where
  // the partials of all splits would outgrow kSplitPartialBudgetBytes.
  KeySplits plan_key_splits(std::int64_t chunk_keys) const {
    const AttentionShape& s = plan_.shape;
    if (!queries_fit_one_block(s, plan_.block_rows)) return {};
    const std::int64_t Bc = plan_.block_keys, nk = layout_.nk_padded();
    std::int64_t keys = chunk_keys;
    const std::int64_t split_bytes = s.batch * s.q_heads * partial_floats() * static_cast<std::int64_t>(sizeof(float));
    const std::int64_t most = std::max<std::int64_t>(1, kSplitPartialBudgetBytes / split_bytes);
    if ((nk + keys - 1) / keys > most) keys = ((nk + most - 1) / most + Bc - 1) / Bc * Bc;
    return {keys, (nk + keys - 1) / keys};
  }

  // Floats of one query head's partial output for one split: [Nq][dv_padded] unnormalized
  // output, then Nq row maxima and Nq row sums (laid out as a chunk's carry), rounded up to
  // whole cache lines so that every partial's output rows start on a line: a block per head
  // (run_split_by_head) accumulates there, and rows 2 floats past a line split every other
  // vector across two lines (when stacked heads accumulated in their partials, 64 query heads
  // on 8 read 3.6 GB/s so, 4.1 on whole lines).
  std::int64_t partial_floats() const {
    constexpr std::int64_t kLineFloats = 64 / sizeof(float);
    return (plan_.shape.nq * (plan_.dv_padded + 2) + kLineFloats - 1) / kLineFloats * kLineFloats;
  }

  // Whether a split runs its kv head's whole group as one block (run_stacked_split): not
  // where a position bias or additive scores differ per head (run_split_by_head).
  bool splits_stack_heads() const { return !plan_.bias.enabled() && !plan_.additive.enabled(); }

  // Whether a split's blocks read the caller's key and value rows in place, each once, in
  // order (qk_rows, pv_rows): blocks of a few rows whose keys need no rotation first. Larger
  // blocks have each tile packed for the register-blocked kernels.
  bool splits_read_rows_in_place() const {
    const std::int64_t rows = splits_stack_heads() ? plan_.shape.group() * plan_.shape.nq : plan_.shape.nq;
    const bool mid_depth = plan_.score_depth >= 96 && plan_.score_depth <= 128;
    return rows <= (mid_depth ? kRowsInPlaceMidDepth : kRowsInPlace) && !plan_.rope.enabled() &&
           !plan_.additive.enabled() && k_.strides[3] == 1 && v_.strides[3] == 1;
  }

  AttentionStats run_key_splits(tbb::enumerable_thread_specific<BlockScratch>& scratch, KeySplits splits) const {
    const AttentionShape& s = plan_.shape;
    const std::int64_t W = plan_.dv_padded;
    const std::int64_t heads = s.batch * s.kv_heads, G = s.group(), nq = s.nq, part = partial_floats();
    const bool stacked = splits_stack_heads(), rows_in_place = splits_read_rows_in_place();
    // [kv head][split][query head of its group]: one partial each.
    AlignedBuffer partials(heads * splits.count * G * part);
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(0, heads * splits.count, 1),
        [&](const tbb::blocked_range<std::int64_t>& range) {
          const simd::DenormalsFlushed flushed;
          BlockScratch& local = scratch.local();
          for (std::int64_t task = range.begin(); task != range.end(); ++task) {
            const std::int64_t head = task / splits.count, b = head / s.kv_heads;
            const KeyRange split{task % splits.count * splits.keys,
                                 std::min(layout_.nk_padded(), (task % splits.count + 1) * splits.keys)};
            float* group_partials = partials.data() + task * G * part;
            const KeyRange seen = plan_.visibility.hull(b, 0, nq);
            if (seen.empty() || seen.end <= split.begin || seen.begin >= split.end) {  // no query sees these keys
              for (std::int64_t g = 0; g < G; ++g) {
                float* partial = group_partials + g * part;
                std::fill(partial, partial + nq * W, 0.0f);
                std::fill(partial + nq * W, partial + nq * (W + 1), kNegInf);
                std::fill(partial + nq * (W + 1), partial + part, 0.0f);
              }
              continue;
            }
            if (stacked) {
              run_stacked_split(local, head, split, rows_in_place, group_partials);
            } else {
              run_split_by_head(local, head, split, rows_in_place, group_partials);
            }
          }
        },
        tbb::simple_partitioner());
    merge_splits(partials.data(), splits.count);
    return stats_of(scratch, partials.bytes());
  }

  // The keys of a split of kv head `head` tile by tile, as the rows of a block of its
  // queries (all of them: [0, Nq)) see them, each tile's keys and values read where they lie
  // (rows_in_place) or copied in sequential runs and packed (KeyReads::staged,
  // pack_value_rows): either way each row comes from memory once, in order, and every query
  // of the group runs over it while it is in cache. run(tile's keys, tile) for each tile.
  template <class RunTile>
  void for_each_split_tile(BlockScratch& local, std::int64_t head, KeyRange split, bool rows_in_place,
                           RunTile run) const {
    const std::int64_t b = head / plan_.shape.kv_heads, h = head % plan_.shape.kv_heads;
    const std::int64_t P = layout_.panel_width, D = layout_.d, W = value_width_;
    plan_tiles(local, b, 0, plan_.shape.nq, split.begin, split.end);
    if (rows_in_place) {
      const KeyChunk in_place{split.begin, split.end, nullptr, nullptr, v_.strides[2],
                              caller_row(k_, b, h, split.begin), k_.strides[2], caller_row(v_, b, h, split.begin)};
      for (const KeyRange& tile : local.tiles) run(in_place, tile);
      return;
    }
    local.band.resize((plan_.max_tile_keys() + P) * (D + W));
    const std::vector<KeyRange>& tiles = local.tiles;
    auto panels_of = [P](const KeyRange& tile) { return std::array{tile.begin / P, (tile.end + P - 1) / P}; };
    for (std::size_t t = 0; t < tiles.size(); ++t) {
      const auto [p0, p1] = panels_of(tiles[t]);
      float* keys = local.band.data();
      float* values = keys + (p1 - p0) * P * D;
      pack_panels(head, p0, p1, keys, values, PanelStores::cached, KeyReads::staged);
      // The next tile's rows fetched while this one runs (a few lines between the kernels'
      // register blocks), so that much of its copy reads cache rather than memory: 1.04-1.06x
      // for 32 to 64 rows of queries (Nq = 8 or 16 with 32 heads on 8, Nq = 1 with 48 on 1).
      local.prefetch.clear();
      if (t + 1 < tiles.size()) {
        const auto [next0, next1] = panels_of(tiles[t + 1]);
        queue_key_rows(local.prefetch, b, h, next0 * P, std::min(next1 * P, plan_.shape.nk));
      }
      run(KeyChunk{p0 * P, p1 * P, keys, values, W}, tiles[t]);
    }
  }

  // A split for every query head of kv head `head`'s group as one block: row g·Nq + i is
  // query i of the group's head g, so each key and value row read in place, or each packed
  // tile, serves all of them at once. Nq = 4 with 32 query heads on 8 (D = 128, Nk = 16384,
  // 1 thread): 67 ms as a block per head, 38 ms as one block of 16 rows.
  void run_stacked_split(BlockScratch& local, std::int64_t head, KeyRange split, bool rows_in_place,
                         float* group_partials) const {
    const AttentionShape& s = plan_.shape;
    const std::int64_t b = head / s.kv_heads, first_head = head % s.kv_heads * s.group();
    const std::int64_t G = s.group(), nq = s.nq, rows = G * nq, depth = plan_.score_depth;
    const std::int64_t W = plan_.dv_padded, part = partial_floats();
    RowState st(local.rows.data(), plan_.block_rows);
    st.queries_per_head = G > 1 ? nq : 0;  // one head: a plain block (sliced at a mask's edges)
    float* q = local.q.data();
    for (std::int64_t g = 0; g < G; ++g) {
      float* head_rows = q + g * nq * depth;
      const float* from = query_rows(head_rows, b, first_head + g, 0, nq);
      if (from != head_rows) std::copy_n(from, nq * depth, head_rows);
    }
    st.q = q;
    st.acc = local.acc.data();
    std::fill(st.max, st.max + rows, kNegInf);
    std::fill(st.sum, st.sum + rows, 0.0f);
    std::fill(st.acc, st.acc + rows * W, 0.0f);
    for_each_split_tile(local, head, split, rows_in_place, [&](const KeyChunk& keys, const KeyRange& tile) {
      run_tiles(local, st, keys, b, first_head, 0, rows, tile.begin, tile.end);
    });
    for (std::int64_t g = 0; g < G; ++g) {  // as close_block leaves a partial
      float* partial = group_partials + g * part;
      std::copy_n(st.acc + g * nq * W, nq * W, partial);
      std::copy_n(st.max + g * nq, nq, partial + nq * W);
      std::copy_n(st.sum + g * nq, nq, partial + nq * (W + 1));
    }
  }

  // A split for each query head of kv head `head`'s group as a block of its own (each head's
  // position bias differs), tile by tile: the heads' states side by side in the scratch.
  void run_split_by_head(BlockScratch& local, std::int64_t head, KeyRange split, bool rows_in_place,
                         float* group_partials) const {
    const AttentionShape& s = plan_.shape;
    const std::int64_t b = head / s.kv_heads, first_head = head % s.kv_heads * s.group();
    const std::int64_t G = s.group(), nq = s.nq, W = plan_.dv_padded, part = partial_floats();
    auto handoff = [&](std::int64_t g) {  // query head g of the group: its partial, from scratch
      float* partial = group_partials + g * part;
      return Handoff{true, false, partial + nq * W, false, partial};
    };
    std::vector<RowState> states;
    for (std::int64_t g = 0; g < G; ++g) {
      states.push_back(open_block(local, g * nq, b, first_head + g, 0, nq, handoff(g)));
    }
    for_each_split_tile(local, head, split, rows_in_place, [&](const KeyChunk& keys, const KeyRange& tile) {
      for (std::int64_t g = 0; g < G; ++g) {
        run_tiles(local, states[g], keys, b, first_head + g, 0, nq, tile.begin, tile.end);
      }
    });
    for (std::int64_t g = 0; g < G; ++g) close_block(states[g], b, first_head + g, 0, nq, handoff(g));
  }

  // Each query row's output from its partials: Σ_s 2^(max_s - max) acc_s / Σ_s 2^(max_s - max)
  // sum_s, in split order (the same bits for any thread count); out and lse as write_rows
  // writes them.
  void merge_splits(const float* partials, std::int64_t count) const {
    const AttentionShape& s = plan_.shape;
    const std::int64_t W = plan_.dv_padded, G = s.group(), nq = s.nq, part = partial_floats();
    const bool softmax = plan_.normalizer == Normalizer::softmax;
    // relu divides by Nk; sigmoid weights stand as they are (neither has a max or a sum).
    const float unnormalized_scale = plan_.normalizer == Normalizer::relu
                                         ? 1.0f / static_cast<float>(std::max<std::int64_t>(1, s.nk))
                                         : 1.0f;
    tbb::parallel_for(std::int64_t{0}, s.batch * s.q_heads, [&](std::int64_t query_head) {
      const std::int64_t b = query_head / s.q_heads, qh = query_head % s.q_heads;
      const float* first = partials + ((b * s.kv_heads + qh / G) * count * G + qh % G) * part;
      auto partial = [&](std::int64_t split) { return first + split * G * part; };
      float* out_head = out_.data + b * out_.strides[0] + qh * out_.strides[1];
      std::vector<float> row(static_cast<std::size_t>(W));
      for (std::int64_t r = 0; r < nq; ++r) {
        float max = kNegInf, sum = 0.0f;
        for (std::int64_t split = 0; softmax && split < count; ++split) max = std::max(max, partial(split)[nq * W + r]);
        std::fill(row.begin(), row.end(), 0.0f);
        for (std::int64_t split = 0; split < count; ++split) {
          const float* p = partial(split);
          const float split_max = p[nq * W + r];
          const float weight = !softmax ? 1.0f : split_max == kNegInf ? 0.0f : std::exp2(split_max - max);
          if (weight == 0.0f) continue;
          sum += weight * p[nq * (W + 1) + r];
          for (std::int64_t c = 0; c < s.dv; ++c) row[c] += weight * p[r * W + c];
        }
        const bool any = sum > 0.0f;
        const float inv = !softmax ? unnormalized_scale : any ? 1.0f / sum : 0.0f;
        if (!lse_.empty()) {
          lse_.data[b * lse_.strides[0] + qh * lse_.strides[1] + r * lse_.strides[2]] =
              any ? std::numbers::ln2_v<float> * (max + std::log2(sum)) : kNegInf;
        }
        float* out_row = out_head + r * out_.strides[2];
        for (std::int64_t c = 0; c < s.dv; ++c) out_row[c * out_.strides[3]] = row[c] * inv;
      }
    });
  }

  // Query blocks that each see a narrow band of a long head's keys (a window): a task takes
  // consecutive query blocks of a kv head and packs, into a buffer of its thread, the panels
  // each block sees that the ones before it did not, just before running it. So each key is
  // packed about once, into the caches it is read from right after, and no buffer grows with
  // n. Packing whole heads first, through memory, a (256, 256) window at n = 16384 (D = 64,
  // 1 thread) ran at 137.5 GFLOP/s; in bands at 142.4 (medians of 3, one run), 150.8 with
  // the next block's rows prefetched (simd::PrefetchQueue; 147.3 without, medians of 5);
  // D = 128: 147.6 -> 163.2.
  void run_bands(tbb::enumerable_thread_specific<BlockScratch>& scratch, std::int64_t q_blocks,
                 bool values_in_place) const {
    const AttentionShape& s = plan_.shape;
    const std::int64_t P = layout_.panel_width, D = layout_.d, W = value_width_, Br = plan_.block_rows;
    const std::int64_t heads = s.batch * s.kv_heads;
    // Enough tasks for every thread, few enough that repacking the first block's keys of
    // each task stays small. Results do not depend on it: a block computes the same scores
    // from any band.
    const std::int64_t wanted_tasks = kBandTasksPerThread * tbb::this_task_arena::max_concurrency();
    const std::int64_t wanted_bands = (wanted_tasks + heads - 1) / heads;
    const std::int64_t band_blocks = std::clamp<std::int64_t>((q_blocks + wanted_bands - 1) / wanted_bands, 1, kMaxBandBlocks);
    const std::int64_t bands = (q_blocks + band_blocks - 1) / band_blocks;
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(0, heads * bands, 1),
        [&](const tbb::blocked_range<std::int64_t>& range) {
          const simd::DenormalsFlushed flushed;
          BlockScratch& local = scratch.local();
          for (std::int64_t task = range.begin(); task != range.end(); ++task) {
            const auto [head, qb0, qb1, p_first, p_last] = band_task(task, bands, band_blocks, q_blocks);
            const std::int64_t b = head / s.kv_heads, h = head % s.kv_heads;
            const std::int64_t band_keys = (p_last - p_first) * P;
            local.band.resize(band_keys * (D + (values_in_place ? 0 : W)));
            float* keys = local.band.data();
            float* values = values_in_place ? nullptr : keys + band_keys * D;
            const float* value_rows = values_in_place ? row_in_place(v_, b, h, p_first * P) : values;
            std::int64_t packed_until = p_first;
            for (std::int64_t qb = qb0; qb < qb1; ++qb) {
              const std::int64_t i0 = qb * Br;
              const KeyRange seen = plan_.visibility.hull(b, i0, std::min(s.nq, i0 + Br));
              const std::int64_t p_end = seen.empty() ? packed_until : std::min(p_last, (seen.end + P - 1) / P);
              local.prefetch.clear();
              if (qb + 1 < qb1) {
                queue_block(local.prefetch, b, h, qb + 1, p_end, p_last);
              } else if (task + 1 < heads * bands) {
                // The next task's first rows: usually this thread's next (a range is split in
                // halves, each run in order); a guess that costs nothing when another thread
                // takes it. Short heads (one band each, 32 x 12 heads, D = 64, 1 thread): n =
                // 128 1.058x, 256 1.046x (a control variant 0.996x), 512 1.024x; n = 256 on
                // 2 threads 1.079x.
                const BandTask next = band_task(task + 1, bands, band_blocks, q_blocks);
                queue_block(local.prefetch, next.head / s.kv_heads, next.head % s.kv_heads, next.qb0, next.p_first,
                            next.p_last);
              }
              if (p_end > packed_until) {
                pack_panels(head, packed_until, p_end, keys + (packed_until - p_first) * P * D,
                            values == nullptr ? nullptr : values + (packed_until - p_first) * P * W,
                            PanelStores::cached);
                packed_until = p_end;
              }
              const KeyChunk chunk{p_first * P, packed_until * P, keys, value_rows, values_in_place ? v_.strides[2] : W};
              const Handoff handoff{true, true, nullptr, qb > qb0};
              for (std::int64_t in_group = 0; in_group < s.group(); ++in_group) {
                run_block(local, b, h * s.group() + in_group, i0, chunk, handoff);
              }
            }
          }
        },
        tbb::simple_partitioner());
  }

  // Queues the rows of q and out (every query head of kv head h's group) and the new rows of
  // k and v that query block qb reads and writes, from panel `packed_until` on.
  void queue_block(simd::PrefetchQueue& queue, std::int64_t b, std::int64_t h, std::int64_t qb,
                   std::int64_t packed_until, std::int64_t p_last) const {
    const AttentionShape& s = plan_.shape;
    const std::int64_t P = layout_.panel_width, i0 = qb * plan_.block_rows;
    const std::int64_t rows = std::min(plan_.block_rows, s.nq - i0);
    for (std::int64_t in_group = 0; in_group < s.group(); ++in_group) queue_rows(queue, b, h * s.group() + in_group, i0);
    const KeyRange seen = plan_.visibility.hull(b, i0, i0 + rows);  // packed to the end of its panel
    queue_key_rows(queue, b, h, packed_until * P, std::min({(seen.end + P - 1) / P * P, p_last * P, s.nk}));
  }

  // Task `task` of run_bands: kv head `head`'s query blocks [qb0, qb1), which see the key
  // panels [p_first, p_last).
  struct BandTask {
    std::int64_t head, qb0, qb1, p_first, p_last;
  };
  BandTask band_task(std::int64_t task, std::int64_t bands, std::int64_t band_blocks, std::int64_t q_blocks) const {
    const std::int64_t P = layout_.panel_width, Br = plan_.block_rows;
    const std::int64_t head = task / bands, b = head / plan_.shape.kv_heads;
    const std::int64_t qb0 = task % bands * band_blocks, qb1 = std::min(q_blocks, qb0 + band_blocks);
    const KeyRange band = plan_.visibility.hull(b, qb0 * Br, std::min(plan_.shape.nq, qb1 * Br));
    if (band.empty()) return {head, qb0, qb1, 0, 0};
    return {head, qb0, qb1, band.begin / P, std::min(layout_.panels(), (band.end + P - 1) / P)};
  }

  // Queues the rows of k and v of keys [j0, j1) of kv head h.
  void queue_key_rows(simd::PrefetchQueue& queue, std::int64_t b, std::int64_t h, std::int64_t j0,
                      std::int64_t j1) const {
    if (j1 <= j0) return;
    constexpr std::int64_t E = sizeof(KV);
    const KV* k_rows = k_.data + b * k_.strides[0] + h * k_.strides[1] + j0 * k_.strides[2];
    if (k_.strides[3] == 1) queue.add_rows(k_rows, j1 - j0, plan_.shape.d * E, k_.strides[2] * E);
    const KV* v_rows = v_.data + b * v_.strides[0] + h * v_.strides[1] + j0 * v_.strides[2];
    if (v_.strides[3] == 1) queue.add_rows(v_rows, j1 - j0, plan_.shape.dv * E, v_.strides[2] * E);
  }

  // Queues the rows of q and out of query head qh's query block at row i0.
  void queue_rows(simd::PrefetchQueue& queue, std::int64_t b, std::int64_t qh, std::int64_t i0) const {
    const std::int64_t rows = std::min(plan_.block_rows, plan_.shape.nq - i0);
    constexpr std::int64_t E = sizeof(Q), F = sizeof(float);
    const Q* q_rows = q_.data + b * q_.strides[0] + qh * q_.strides[1] + i0 * q_.strides[2];
    if (q_.strides[3] == 1) queue.add_rows(q_rows, rows, plan_.shape.d * E, q_.strides[2] * E);
    const float* out_rows = out_.data + b * out_.strides[0] + qh * out_.strides[1] + i0 * out_.strides[2];
    if (out_.strides[3] == 1) queue.add_rows(out_rows, rows, plan_.shape.dv * F, out_.strides[2] * F);
  }

  AttentionStats stats_of(const tbb::enumerable_thread_specific<BlockScratch>& scratch,
                          std::int64_t shared_scratch_bytes) const {
    AttentionStats stats;
    stats.visible_pairs = plan_.visibility.visible_pairs() * plan_.shape.q_heads;
    // Per visible pair: the score (D multiply-adds, or Da tanh terms) and its row of P·V.
    stats.flops =
        2.0 * static_cast<double>(plan_.score_depth + plan_.shape.dv) * static_cast<double>(stats.visible_pairs);
    stats.scratch_bytes = shared_scratch_bytes + plan_.visibility.scratch_bytes();
    for (const BlockScratch& one : scratch) {
      stats.scratch_bytes += one.bytes();
      stats.computed_pairs += one.computed_pairs;
    }
    stats.isa = plan_.kernels->isa;
    stats.bf16_products = pairs_ != nullptr;
    return stats;
  }

  // Keys [begin, end) of one kv head: what a query block runs over. Packed, or (key_rows) the
  // caller's rows read in place by the decoding kernels, in the inputs' element type.
  struct KeyChunk {
    std::int64_t begin, end;
    const float* key_panels;  // panel of key `begin` first
    const float* value_rows;  // row of key `begin` first: the caller's fp32 v, or packed rows
    std::int64_t value_stride;  // elements from one value row to the next
    const KV* key_rows = nullptr;  // the caller's row of key `begin` (no panels, no value_rows)
    std::int64_t key_row_stride = 0;  // elements from one key row to the next
    const KV* caller_value_rows = nullptr;  // with key_rows: the caller's row of key `begin`
  };

  // Where a query block's running state comes from before a KeyChunk and goes after it.
  struct Handoff {
    bool first, last;             // the first / last keys this query block sees
    float* carry;                 // [2][Nq] running max and sum between chunks, or null
    bool out_prefetched = false;  // the block's rows of out were fetched ahead: cached stores
    float* partial = nullptr;     // [Nq][dv_padded]: where the block's unnormalized output stays
  };

  // Key panels [p0, p1) of kv head `head` (b · kv_heads + h) into `keys`, and their value
  // rows into `values` unless it is null (values read in place).
  void pack_panels(std::int64_t head, std::int64_t p0, std::int64_t p1, float* keys, float* values,
                   PanelStores stores, KeyReads reads = KeyReads::in_place) const {
    const std::int64_t b = head / plan_.shape.kv_heads, h = head % plan_.shape.kv_heads;
    if constexpr (kBf16Inputs) {
      if (pairs_ != nullptr) {  // as they are: the score scale is applied by the kernel
        pack_key_pair_panels(*pairs_, k_, b, h, layout_, p0, p1, reinterpret_cast<bf16*>(keys), stores,
                             plan_.rope.enabled() ? &plan_.rope : nullptr);
        if (values != nullptr) pack_value_pair_rows(*pairs_, v_, b, h, layout_, p0, p1, reinterpret_cast<bf16*>(values));
        return;
      }
    }
    if (plan_.additive.enabled()) {
      pack_projected_key_panels(*plan_.kernels, k_, plan_.additive.wk, b, h, layout_, p0, p1, keys, stores);
    } else {
      pack_key_panels(*plan_.kernels, k_, b, h, layout_, p0, p1, plan_.key_scale, keys, stores,
                      plan_.rope.enabled() ? &plan_.rope : nullptr, reads);
    }
    if (values != nullptr) pack_value_rows(*plan_.kernels, v_, b, h, layout_, p0, p1, values);
  }

  void run_block(BlockScratch& scratch, std::int64_t b, std::int64_t h, std::int64_t i0, const KeyChunk& keys,
                 const Handoff& handoff) const {
    const std::int64_t rows = std::min(plan_.block_rows, plan_.shape.nq - i0);
    RowState st = open_block(scratch, 0, b, h, i0, rows, handoff);
    plan_tiles(scratch, b, i0, rows, keys.begin, keys.end);
    for (const KeyRange& tile : scratch.tiles) run_tiles(scratch, st, keys, b, h, i0, rows, tile.begin, tile.end);
    close_block(st, b, h, i0, rows, handoff);
  }

  // Rows [i0, i0 + rows) of query head h as a block, their state in rows [slot, slot + rows)
  // of the scratch: started, or taken from where the last chunk left it.
  RowState open_block(BlockScratch& scratch, std::int64_t slot, std::int64_t b, std::int64_t h, std::int64_t i0,
                      std::int64_t rows, const Handoff& handoff) const {
    const std::int64_t W = plan_.dv_padded;
    RowState st(scratch.rows.data() + slot, plan_.block_rows);
    st.q = query_rows(scratch.q.data() + slot * layout_.d, b, h, i0, rows);
    float* out_rows = out_.data + b * out_.strides[0] + h * out_.strides[1] + i0 * out_.strides[2];
    st.acc = handoff.partial != nullptr     ? handoff.partial + i0 * W
             : accumulates_in_out(handoff) ? out_rows
                                           : scratch.acc.data() + slot * W;
    if (handoff.first) {
      std::fill(st.max, st.max + rows, kNegInf);
      std::fill(st.sum, st.sum + rows, 0.0f);
      std::fill(st.acc, st.acc + rows * W, 0.0f);
    } else {
      restore_rows(st, handoff.carry, b, h, i0, rows, accumulates_in_scratch(handoff));
    }
    return st;
  }

  // The block's output written, or its state left for the next chunk.
  void close_block(const RowState& st, std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows,
                   const Handoff& handoff) const {
    if (handoff.last) {
      write_rows(st, b, h, i0, rows, handoff.out_prefetched);
    } else {
      save_rows(st, handoff.carry, b, h, i0, rows, accumulates_in_scratch(handoff));
    }
  }

  // While a block's keys come in several chunks, its output accumulates in out's own rows
  // where they lie like the accumulator's: nothing is copied out and back between chunks.
  bool accumulates_in_out(const Handoff& handoff) const {
    return handoff.partial == nullptr && handoff.carry != nullptr && out_rows_like_acc_;
  }
  bool accumulates_in_scratch(const Handoff& handoff) const {
    return handoff.partial == nullptr && !accumulates_in_out(handoff);
  }

  // The tiles (scratch.tiles) rows [i0, i0 + rows) run over keys [begin, end) (multiples of
  // Bc and P, so tiles keep their panel alignment), in the order they run.
  void plan_tiles(BlockScratch& scratch, std::int64_t b, std::int64_t i0, std::int64_t rows, std::int64_t begin,
                  std::int64_t end) const {
    const std::int64_t P = plan_.kernels->panel_width, Bc = plan_.block_keys, i1 = i0 + rows;
    plan_.visibility.key_ranges(b, i0, i1, scratch.key_ranges);
    // Tiles are cut apart where every row starts and stops seeing keys (the panel-aligned
    // common range), so a window's edges and the causal diagonal fall in narrow partial
    // tiles and the keys all rows see run in full tiles.
    const KeyRange common = plan_.visibility.common(b, i0, i1);
    const std::int64_t full_begin = (common.begin + P - 1) / P * P, full_end = common.end / P * P;
    scratch.tiles.clear();
    for (const KeyRange& range : scratch.key_ranges) {
      const std::int64_t first = std::max(range.begin, begin), last = std::min(range.end, end);
      if (first >= last) continue;  // a range beside these keys (std::clamp below needs first <= last)
      std::int64_t cuts[4] = {first, first, last, last};
      if (full_begin < full_end) {
        cuts[1] = std::clamp(full_begin, first, last);
        cuts[2] = std::clamp(full_end, cuts[1], last);
      }
      for (int segment = 0; segment < 3; ++segment) {
        for (std::int64_t j0 = cuts[segment], width; j0 < cuts[segment + 1]; j0 += width) {
          width = cuts[segment + 1] - j0 <= plan_.max_tile_keys() ? cuts[segment + 1] - j0 : Bc;
          scratch.tiles.push_back({j0, j0 + width});
        }
      }
    }
    if (plan_.bias.enabled()) {
      // Nearest keys first: a position bias is largest there (ALiBi's falls off with the
      // distance), so the rows' running max is set early and the farther tiles run lazily
      // (exp2 in the kernel). Left to right, every tile before the queries' positions
      // raised the max past kLazySumLimit on ALiBi's steeper heads and ran QKᵀ twice.
      const std::int64_t p0 = i0 + plan_.shape.nk - plan_.shape.nq, p1 = p0 + rows - 1;
      auto distance = [&](const KeyRange& t) { return std::max({std::int64_t{0}, t.begin - p1, p0 - (t.end - 1)}); };
      std::stable_sort(scratch.tiles.begin(), scratch.tiles.end(),
                       [&](const KeyRange& x, const KeyRange& y) { return distance(x) < distance(y); });
    }
  }

  // The block's query rows, score_depth floats apart: q's own fp32 rows where they lie so (the
  // score scale is in the packed keys), else copied (bf16: widened), rotated (RoPE) or
  // projected (additive scores) into `buffer`. Rows far apart (BNHD) are copied: read in
  // place, 96 rows 2 KiB apart would fall into a few L1 sets.
  const float* query_rows(float* buffer, std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows) const {
    const std::int64_t D = plan_.shape.d;
    const Q* q_head = q_.data + b * q_.strides[0] + h * q_.strides[1];
    if (plan_.additive.enabled()) {
      project_queries(q_head, i0, rows, buffer);
      return buffer;
    }
    if constexpr (kBf16Inputs) {
      if (pairs_ != nullptr) {  // bf16 rows of layout_.d pairs, an odd D's last pair completed by a zero
        const bf16* first = q_head + i0 * q_.strides[2];
        if (!plan_.rope.enabled() && q_rows_back_to_back_ && D % 2 == 0 &&
            reinterpret_cast<std::uintptr_t>(first) % sizeof(float) == 0) {
          return reinterpret_cast<const float*>(first);  // q's own rows are such rows
        }
        const std::int64_t padded = 2 * layout_.d;
        bf16* rows_out = reinterpret_cast<bf16*>(buffer);
        std::vector<float> rotated(plan_.rope.enabled() ? static_cast<std::size_t>(D) : 0);
        for (std::int64_t r = 0; r < rows; ++r) {
          const bf16* query = q_head + (i0 + r) * q_.strides[2];
          bf16* row = rows_out + r * padded;
          if (plan_.rope.enabled()) {  // widened, rotated, rounded back to bf16, as the keys are
            widen_row(*plan_.kernels, query, q_.strides[3], D, rotated.data());
            plan_.rope.rotate(rotated.data(), 1, i0 + r + plan_.shape.nk - plan_.shape.nq, 1.0f, rotated.data());
            for (std::int64_t d = 0; d < D; ++d) row[d] = bf16(rotated[d]);
          } else if (q_.strides[3] == 1) {
            std::copy_n(query, D, row);
          } else {
            for (std::int64_t d = 0; d < D; ++d) row[d] = query[d * q_.strides[3]];
          }
          std::fill(row + D, row + padded, bf16());
        }
        return buffer;
      }
    }
    const std::int64_t first_position = i0 + plan_.shape.nk - plan_.shape.nq;
    if constexpr (kReadInPlace<Q>) {
      if (plan_.rope.enabled()) {
        for (std::int64_t r = 0; r < rows; ++r) {
          plan_.rope.rotate(q_head + (i0 + r) * q_.strides[2], q_.strides[3], first_position + r, 1.0f, buffer + r * D);
        }
        return buffer;
      }
      if (q_rows_back_to_back_) return q_head + i0 * D;
    }
    for (std::int64_t r = 0; r < rows; ++r) {  // copied (widened), then rotated there
      float* row = buffer + r * D;
      widen_row(*plan_.kernels, q_head + (i0 + r) * q_.strides[2], q_.strides[3], D, row);
      if (plan_.rope.enabled()) plan_.rope.rotate(row, 1, first_position + r, 1.0f, row);
    }
    return buffer;
  }

  // Row j of head (b, h) of an input where it lies.
  template <class E>
  static const E* caller_row(const HeadsView<const E>& view, std::int64_t b, std::int64_t h, std::int64_t j) {
    return view.data + b * view.strides[0] + h * view.strides[1] + j * view.strides[2];
  }
  // The same row as the fp32 the packed kernels read in place; other inputs are packed.
  template <class E>
  static const float* row_in_place(const HeadsView<const E>& view, std::int64_t b, std::int64_t h, std::int64_t j) {
    if constexpr (kReadInPlace<E>) {
      return caller_row(view, b, h, j);
    } else {
      return nullptr;
    }
  }

  // The rows of the query block against keys [j0, j1) (j0 panel-aligned): one full tile, or
  // row slices over only the keys they can see, a vector of keys at a time (whole panels for
  // additive scores, whose kernel works on panels), masked where needed.
  void run_tiles(BlockScratch& scratch, RowState& st, const KeyChunk& keys, std::int64_t b,
                 std::int64_t h, std::int64_t i0, std::int64_t rows, std::int64_t j0, std::int64_t j1) const {
    const std::int64_t P = plan_.kernels->panel_width;
    const std::int64_t end = j0 + (j1 - j0 + P - 1) / P * P;
    // A stacked block's rows hold the same queries once per head: one slice of them all.
    const std::int64_t positions = st.queries_per_head != 0 ? st.queries_per_head : rows;
    const TileKind kind = plan_.visibility.classify(b, i0, i0 + positions, j0, end);
    if (kind != TileKind::partial) {
      if (kind == TileKind::full) run_tile(scratch, st, keys, b, h, i0, 0, rows, j0, end - j0, false);
      return;
    }
    const std::int64_t grain = plan_.additive.enabled() ? P : plan_.kernels->lanes;
    const std::int64_t slice = st.queries_per_head != 0 ? rows : kSliceRows;
    for (std::int64_t r0 = 0; r0 < rows; r0 += slice) {
      const std::int64_t n = std::min(slice, rows - r0), i1 = i0 + r0 + std::min(n, positions);
      const KeyRange hull = plan_.visibility.hull(b, i0 + r0, i1);
      const std::int64_t lo = std::max(hull.begin, j0), hi = std::min(hull.end, end);
      if (hi <= lo) continue;  // these rows see nothing here: their state stays as it is
      const std::int64_t k0 = lo / grain * grain, k1 = std::min(end, (hi + grain - 1) / grain * grain);
      const TileKind part = plan_.visibility.classify(b, i0 + r0, i1, k0, k1);
      if (part != TileKind::skipped) {
        run_tile(scratch, st, keys, b, h, i0, r0, n, k0, k1 - k0, part == TileKind::partial);
      }
    }
  }

  // Additive scoring: qp[r][a] = Σ_d Wq[a][d] q[i0 + r][d].
  void project_queries(const Q* q_head, std::int64_t i0, std::int64_t rows, float* qp) const {
    const TensorView<const float, 2>& wq = plan_.additive.wq;
    const std::int64_t Da = plan_.score_depth, D = plan_.shape.d;
    for (std::int64_t r = 0; r < rows; ++r) {
      const Q* query = q_head + (i0 + r) * q_.strides[2];
      for (std::int64_t a = 0; a < Da; ++a) {
        float sum = 0;
        for (std::int64_t d = 0; d < D; ++d) {
          sum += wq.data[a * wq.strides[0] + d * wq.strides[1]] * to_float(query[d * q_.strides[3]]);
        }
        qp[r * Da + a] = sum;
      }
    }
  }

  // The scores of simd's qk_tile, on packed fp32 or (pairs_) bf16 pairs: q rows layout_.d
  // 4-byte units apart.
  void qk_tile(const float* q, std::int64_t n, const float* key_panels, std::int64_t first_key, std::int64_t keys,
               float* s, std::int64_t lds, const float* row_offset, const float* diagonals,
               const std::int32_t* row_bounds, float* row_max, float* row_sum, simd::PrefetchQueue& prefetch) const {
    if (pairs_ != nullptr) {
      pairs_->qk_tile(reinterpret_cast<const bf16*>(q), n, layout_.d, reinterpret_cast<const bf16*>(key_panels),
                      first_key, keys, s, lds, plan_.key_scale, row_offset, diagonals, row_bounds, row_max, row_sum,
                      prefetch);
    } else {
      plan_.kernels->qk_tile(q, n, layout_.d, key_panels, first_key, keys, s, lds, row_offset, diagonals, row_bounds,
                             row_max, row_sum, prefetch);
    }
  }

  // Rows [r0, r0 + n) of the query block against keys [j0, j0 + width) of the chunk (j0 and
  // width multiples of lanes): scores, element masks when `masked`, the online-softmax
  // update, then P·V.
  void run_tile(BlockScratch& scratch, RowState& st, const KeyChunk& keys, std::int64_t b,
                std::int64_t h, std::int64_t i0, std::int64_t r0, std::int64_t n, std::int64_t j0,
                std::int64_t width, bool masked) const {
    const simd::KernelTable& kern = *plan_.kernels;
    const std::int64_t D = layout_.d, W = plan_.dv_padded, lds = plan_.max_tile_keys();
    const std::int64_t P = kern.panel_width, panel_begin = j0 / P * P;
    float* s = scratch.scores.data() + r0 * lds;
    const float* q = st.q + r0 * D;
    float* acc = st.acc + r0 * W;
    float *max = st.max + r0, *sum = st.sum + r0, *rescale = st.rescale + r0, *shift = st.shift + r0;
    float *tile_max = st.tile_max + r0, *tile_sum = st.tile_sum + r0;

    scratch.computed_pairs += n * width;
    std::fill(tile_max, tile_max + n, kNegInf);
    // Once every row has a finite max, softmax scores skip the tile max (a max per score
    // vector; without it full attention ran 1.7 % faster at D = 64, 1.2 % at 128): the
    // running max stays the shift, exact for any shift, unless a row's probabilities outgrow
    // kLazySumLimit. Such a tile's exp2 runs in the QKᵀ kernel, on the scores still in
    // registers: without the pass over the tile in memory, full attention ran 1.6 % faster at
    // D = 64, 1.1 % at D = 128, 3.8 % on AVX2. A masked tile whose rows each see an interval
    // of its keys (a window's right edge, the causal diagonal: the slices run after the
    // full tiles) takes that path too, the kernel zeroing the probabilities outside each
    // row's interval: (256, 256) window 1.017x as fast, causal 1.024x (D = 64, paired).
    // Keys read in place (qk_rows) have no exp2 in their kernel: tile max, then exp2_rows.
    const bool rows_in_place = keys.key_rows != nullptr;
    const bool bounded = masked && plan_.visibility.rows_see_intervals();
    const bool lazy = (!masked || bounded) && plan_.normalizer == Normalizer::softmax && !plan_.additive.enabled() &&
                      !rows_in_place && std::none_of(max, max + n, [](float m) { return m == kNegInf; });
    const std::int32_t* bounds = nullptr;
    if (lazy && masked) {
      for_each_run(st, i0, r0, n, [&](std::int64_t i, std::int64_t count, std::int64_t row) {
        plan_.visibility.row_bounds(b, i, count, j0, width, scratch.bounds.data() + 2 * row);
      });
      bounds = scratch.bounds.data();
    }
    const float* key_panels = rows_in_place ? nullptr : keys.key_panels + (panel_begin - keys.begin) * D;
    // A position bias (ALiBi, relative) depends on the key's offset from the query alone:
    // laid out along the tile's diagonals, it is where the QKᵀ kernel starts its scores, so
    // biased tiles take the lazy path too. Row r, column c sits at offset δ = j0 + c - (pos of
    // row 0) - r: diagonal t = c + n - 1 - r holds the bias of δ = j0 - pos0 - (n - 1) + t.
    const float* diagonals = nullptr;
    if (plan_.bias.enabled()) {
      const std::int64_t first_position = i0 + r0 + plan_.shape.nk - plan_.shape.nq;
      plan_.bias.fill(h, j0 - first_position - (n - 1), n - 1 + width, scratch.diagonals.data());
      diagonals = scratch.diagonals.data();
    }
    if (plan_.additive.enabled()) {  // j0 and width are whole panels here
      kern.additive_tile(q, n, D, key_panels, width / P, plan_.additive.w.data(),
                         plan_.score_scale, s, lds, tile_max);
      if (diagonals != nullptr) {
        std::fill(tile_max, tile_max + n, kNegInf);
        kern.add_diagonal_bias(s, n, lds, width, diagonals, tile_max);
      }
    } else if (rows_in_place) {
      scores_in_place(q, n, D, keys, j0, width, s, lds);
      if (diagonals != nullptr) {
        kern.add_diagonal_bias(s, n, lds, width, diagonals, tile_max);
      } else if (!masked) {
        for (std::int64_t r = 0; r < n; ++r) tile_max[r] = kern.max_of(s + r * lds, width);
      }
    } else {
      if (lazy) {  // probabilities against the running max come out, and their row sums
        for (std::int64_t r = 0; r < n; ++r) shift[r] = -max[r];
      }
      qk_tile(q, n, key_panels, j0 - panel_begin, width, s, lds, lazy ? shift : nullptr, diagonals, bounds,
              lazy ? nullptr : tile_max, lazy ? tile_sum : nullptr, scratch.prefetch);
    }
    if (masked && !lazy) mask_rows(st, b, i0, r0, n, j0, width, s, lds);
    // Keys past Nk have probability 0 and no value row to read (v may end there); j0 < Nk.
    const std::int64_t value_keys = std::min(width, plan_.shape.nk - j0);
    const std::int64_t value_offset = (j0 - keys.begin) * keys.value_stride;
    // acc = acc · row_scale + P V; p_in_bf16: the QKᵀ kernel stored P in bf16 (pairs_, lazy)
    auto accumulate = [&](const float* row_scale, bool p_in_bf16 = false) {
      if (rows_in_place) {
        pv_rows(kern, s, n, lds, value_keys, keys.caller_value_rows + value_offset, keys.value_stride, plan_.shape.dv,
                acc, W, row_scale);
      } else if (pairs_ != nullptr) {  // value_offset: half a pair row per key, j0 - keys.begin even
        pairs_->pv_tile(s, n, lds, value_keys, reinterpret_cast<const bf16*>(keys.value_rows + value_offset), W, acc,
                        row_scale, p_in_bf16, scratch.prefetch);
      } else {
        kern.pv_tile(s, n, lds, value_keys, keys.value_rows + value_offset, keys.value_stride, W, acc, row_scale,
                     scratch.prefetch);
      }
    };
    if (plan_.normalizer != Normalizer::softmax) {
      weigh_without_max(n, s, lds, width);
      accumulate(nullptr);
      return;
    }
    bool exponentiated = false;  // against the running max, which stands
    if (lazy) {
      // !(x <= limit) also catches a sum that overflowed to inf.
      exponentiated = std::none_of(tile_sum, tile_sum + n, [](float x) { return !(x <= kLazySumLimit); });
      if (!exponentiated) {  // a row's probabilities outgrew the limit: the scores again, with their max
        qk_tile(q, n, key_panels, j0 - panel_begin, width, s, lds, nullptr, diagonals, nullptr, tile_max, nullptr,
                scratch.prefetch);
        if (masked) mask_rows(st, b, i0, r0, n, j0, width, s, lds);
      }
    }
    if (exponentiated) {  // the running max stands: nothing to rescale
      for (std::int64_t r = 0; r < n; ++r) sum[r] += tile_sum[r];
    } else {
      if (masked) {
        for (std::int64_t r = 0; r < n; ++r) tile_max[r] = kern.max_of(s + r * lds, width);
      }
      softmax_step(st, r0, n, s, lds, width);
    }
    accumulate(exponentiated ? nullptr : rescale, exponentiated);
  }

  // visit(first query, count, first row) for each run of rows [r0, r0 + n) of a block at
  // consecutive query positions: the rows themselves, or (stacked) one run per head.
  template <class Visit>
  static void for_each_run(const RowState& st, std::int64_t i0, std::int64_t r0, std::int64_t n, Visit visit) {
    if (st.queries_per_head == 0) {
      visit(i0 + r0, n, 0);
      return;
    }
    for (std::int64_t r = r0, count; r < r0 + n; r += count) {
      const std::int64_t position = r % st.queries_per_head;
      count = std::min(st.queries_per_head - position, r0 + n - r);
      visit(i0 + position, count, r - r0);
    }
  }

  // Element masks on the scores of rows [r0, r0 + n) of a block against keys [j0, j0 + width).
  void mask_rows(const RowState& st, std::int64_t b, std::int64_t i0, std::int64_t r0, std::int64_t n,
                 std::int64_t j0, std::int64_t width, float* s, std::int64_t lds) const {
    for_each_run(st, i0, r0, n, [&](std::int64_t i, std::int64_t count, std::int64_t row) {
      plan_.visibility.mask_tile(b, i, count, j0, width, s + row * lds, lds);
    });
  }

  // Scores of n query rows (ldq floats apart) against keys [j0, j0 + width) read where they lie
  // (qk_rows). Keys past Nk have no row to read: their scores are -inf (the tile is masked
  // there).
  void scores_in_place(const float* q, std::int64_t n, std::int64_t ldq, const KeyChunk& keys, std::int64_t j0,
                       std::int64_t width, float* s, std::int64_t lds) const {
    const std::int64_t valid = std::min(width, plan_.shape.nk - j0);
    qk_rows(*plan_.kernels, q, n, ldq, plan_.score_depth, keys.key_rows + (j0 - keys.begin) * keys.key_row_stride,
            keys.key_row_stride, valid, plan_.key_scale, s, lds);
    for (std::int64_t r = 0; r < n; ++r) std::fill(s + r * lds + valid, s + r * lds + width, kNegInf);
  }

  // Weights of their own for the normalizers without a running max, in place: P = sigmoid(S + b)
  // or relu(S) (relu's 1 / Nk is applied with the output).
  void weigh_without_max(std::int64_t n, float* s, std::int64_t lds, std::int64_t width) const {
    if (plan_.normalizer == Normalizer::sigmoid) {
      plan_.kernels->sigmoid_rows(s, n, lds, width, plan_.sigmoid_bias);
    } else {
      plan_.kernels->relu_rows(s, n, lds, width);
    }
  }

  // The online-softmax step of rows [r0, r0 + n) of a tile of scores whose row maxima are in
  // tile_max: each row's running max raised to it, the factor (rescale) its output so far is
  // to be scaled by, the probabilities 2^(s - max) in place and the running sums.
  void softmax_step(RowState& st, std::int64_t r0, std::int64_t n, float* s, std::int64_t lds,
                    std::int64_t width) const {
    float *max = st.max + r0, *sum = st.sum + r0, *rescale = st.rescale + r0, *shift = st.shift + r0;
    for (std::int64_t r = 0; r < n; ++r) {
      const float grown = std::max(max[r], st.tile_max[r0 + r]);
      // Until a row has seen a visible key its max is -inf; exp2(-inf - 0) = 0 keeps every
      // probability and the (zero) accumulator exact without a NaN.
      rescale[r] = grown == max[r] ? 1.0f : std::exp2(max[r] - grown);
      shift[r] = grown == kNegInf ? 0.0f : grown;
      max[r] = grown;
    }
    float* tile_sum = st.tile_sum + r0;
    plan_.kernels->exp2_rows(s, n, lds, width, shift, tile_sum);
    for (std::int64_t r = 0; r < n; ++r) sum[r] = sum[r] * rescale[r] + tile_sum[r];
  }

  // Between key chunks max and sum wait in carry; the unnormalized accumulator in `out`,
  // copied there when it is not kept there.
  void save_rows(const RowState& st, float* carry, std::int64_t b, std::int64_t h, std::int64_t i0,
                 std::int64_t rows, bool copy_acc) const {
    const std::int64_t W = plan_.dv_padded, nq = plan_.shape.nq;
    float* out_head = out_.data + b * out_.strides[0] + h * out_.strides[1];
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = out_head + (i0 + r) * out_.strides[2];
      if (copy_acc) {
        if (out_.strides[3] == 1) {
          std::copy_n(st.acc + r * W, plan_.shape.dv, row);
        } else {
          for (std::int64_t c = 0; c < plan_.shape.dv; ++c) row[c * out_.strides[3]] = st.acc[r * W + c];
        }
      }
      carry[i0 + r] = st.max[r];
      carry[nq + i0 + r] = st.sum[r];
    }
  }

  void restore_rows(RowState& st, const float* carry, std::int64_t b, std::int64_t h, std::int64_t i0,
                    std::int64_t rows, bool copy_acc) const {
    const std::int64_t W = plan_.dv_padded, nq = plan_.shape.nq;
    const float* out_head = out_.data + b * out_.strides[0] + h * out_.strides[1];
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* row = out_head + (i0 + r) * out_.strides[2];
      float* acc = st.acc + r * W;
      if (copy_acc) {
        if (out_.strides[3] == 1) {
          std::copy_n(row, plan_.shape.dv, acc);
        } else {
          for (std::int64_t c = 0; c < plan_.shape.dv; ++c) acc[c] = row[c * out_.strides[3]];
        }
        std::fill(acc + plan_.shape.dv, acc + W, 0.0f);
      }
      st.max[r] = carry[i0 + r];
      st.sum[r] = carry[nq + i0 + r];
    }
  }

  // out = acc / sum once per row (in place when acc is out's rows); lse = ln(Σ e^s) =
  // ln2 · (max + log2 sum).
  void write_rows(const RowState& st, std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows,
                  bool out_prefetched) const {
    const std::int64_t W = plan_.dv_padded;
    float* out_head = out_.data + b * out_.strides[0] + h * out_.strides[1];
    // relu divides by Nk; sigmoid weights stand as they are; softmax divides by its sum.
    const float relu_scale = 1.0f / static_cast<float>(std::max<std::int64_t>(1, plan_.shape.nk));
    float* inv = st.rescale;  // free once the block's last tile is done
    for (std::int64_t r = 0; r < rows; ++r) {
      const bool any = st.sum[r] > 0.0f;
      inv[r] = plan_.normalizer == Normalizer::relu      ? relu_scale
               : plan_.normalizer == Normalizer::sigmoid ? 1.0f
               : any                                     ? 1.0f / st.sum[r]
                                                         : 0.0f;
      if (!lse_.empty()) {
        lse_.data[b * lse_.strides[0] + h * lse_.strides[1] + (i0 + r) * lse_.strides[2]] =
            any ? std::numbers::ln2_v<float> * (st.max[r] + std::log2(st.sum[r])) : kNegInf;
      }
    }
    float* first_row = out_head + i0 * out_.strides[2];
    if (out_.strides[3] == 1) {
      // Lines the accumulator already holds in the cache are written back as they are.
      const bool streamed = !out_prefetched && st.acc != first_row;
      plan_.kernels->scale_rows(st.acc, rows, W, inv, first_row, out_.strides[2], plan_.shape.dv, streamed);
      return;
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = first_row + r * out_.strides[2];
      for (std::int64_t c = 0; c < plan_.shape.dv; ++c) row[c * out_.strides[3]] = st.acc[r * W + c] * inv[r];
    }
  }

  static constexpr bool kBf16Inputs = std::is_same_v<Q, bf16> && std::is_same_v<KV, bf16>;

  const FlashPlan& plan_;
  const HeadsView<const Q>& q_;
  const HeadsView<const KV>& k_;
  const HeadsView<const KV>& v_;
  const HeadsView<float>& out_;
  const TensorView<float, 3>& lse_;
  // The bf16 products, when they run: queries, key panels and value rows then hold bf16 pairs
  // (simd::Bf16DotKernels), their sizes counted in 4-byte units like fp32 ones.
  const simd::Bf16DotKernels* pairs_;
  PackedHeadLayout layout_;  // layout_.d: 4-byte units per packed key (features, or pairs)
  std::int64_t value_width_;  // 4-byte units per key of packed values: dv_padded, or half of it in pairs
  // q's rows of a head lie back to back (D floats apart): read in place, and fetched ahead.
  bool q_rows_back_to_back_;
  // out's rows lie as the accumulator's do (dv_padded floats apart, cache-line aligned): a
  // block's output can accumulate there between key chunks.
  bool out_rows_like_acc_;
};

}  // namespace

// Packed keys and values held at once: several kv heads when they fit, so small heads still
// give every thread work; a chunk of one head's keys when a whole head does not. 32 MiB keeps
// n = 65536, D = 64 in one chunk and the engine's memory within the caller's tensors + 64 MiB.
constexpr std::int64_t kPackedBudgetBytes = 32 << 20;

// Packed keys and values of one head's chunk: they stay in L2 (2 MiB per core here) beside
// the query block's tiles while every query block of the head passes over them. Measured at
// n = 16384, 8 heads, 1 thread (GFLOP/s, chunks of 512 KiB / 1 MiB / 1.5 MiB / whole heads):
// D = 64: 174.5 / 184.2 / 177.0 / 167.8; D = 128: 171.0 / 174.0 / 173.7 / 162.0.
constexpr std::int64_t kChunkBytes = 1 << 20;

FlashPlan make_flash_plan(const AttentionShape& shape, const AttentionOptions& options) {
  const simd::KernelTable& kernels = simd::kernels_for(options.isa);
  const float scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(shape.d)));
  // Br × Bc = 96 × 256 for every D: measured (AVX-512, 1 thread, bench/RESULTS.md) against
  // Br ∈ {24, 48, 96, 144, 192} and Bc ∈ {128, 256, 512} at D = 64, 128, 256; smaller Br lost
  // 5–20 % at every D, larger blocks were within noise. Br is a multiple of every target's
  // row group (6 and 4); Bc of every panel width (64, 16, 4).
  const std::int64_t block_rows = 96;
  const std::int64_t block_keys = 256;
  const std::int64_t dv_padded = (shape.dv + kernels.lanes - 1) / kernels.lanes * kernels.lanes;
  const bool softmax = options.normalizer == Normalizer::softmax;
  const bool bf16_dot = options.bf16_products == Bf16Products::native && kernels.bf16_dot != nullptr &&
                        !options.additive.enabled() && !queries_fit_one_block(shape, block_rows);
  return FlashPlan{shape,
                   VisibilityPlan(shape, options, block_rows, kernels.panel_width),
                   options.normalizer,
                   softmax ? scale * std::numbers::log2e_v<float> : scale,
                   options.sigmoid_bias.value_or(-std::log(static_cast<float>(std::max<std::int64_t>(1, shape.nk)))),
                   options.additive,
                   options.additive.enabled() ? static_cast<std::int64_t>(options.additive.w.size()) : shape.d,
                   softmax ? std::numbers::log2e_v<float> : 1.0f,
                   RotaryTable(options.rope, shape.d, std::max(shape.nk, shape.nq)),
                   PositionBias(shape, options, softmax ? std::numbers::log2e_v<float> : 1.0f),
                   &kernels,
                   bf16_dot ? kernels.bf16_dot : nullptr,
                   block_rows,
                   block_keys,
                   dv_padded,
                   kPackedBudgetBytes,
                   kChunkBytes,
                   options.threads};
}

template <class Q, class KV>
AttentionStats run_flash_attention(const FlashPlan& plan, const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                   const HeadsView<const KV>& v, const HeadsView<float>& out,
                                   const TensorView<float, 3>& lse) {
  FlashRunner<Q, KV> runner(plan, q, k, v, out, lse);
  return run_on_threads(plan.threads, [&] { return runner.run(); });
}

template AttentionStats run_flash_attention(const FlashPlan&, const HeadsView<const float>&,
                                            const HeadsView<const float>&, const HeadsView<const float>&,
                                            const HeadsView<float>&, const TensorView<float, 3>&);
template AttentionStats run_flash_attention(const FlashPlan&, const HeadsView<const bf16>&,
                                            const HeadsView<const bf16>&, const HeadsView<const bf16>&,
                                            const HeadsView<float>&, const TensorView<float, 3>&);
template AttentionStats run_flash_attention(const FlashPlan&, const HeadsView<const float>&,
                                            const HeadsView<const bf16>&, const HeadsView<const bf16>&,
                                            const HeadsView<float>&, const TensorView<float, 3>&);

}  // namespace longattn::engine
