// Chunks: packed keys and values of a kv head are read by every one of its query blocks, so
// keys are packed a chunk at a time that stays in L2 while all the head's query blocks pass
// over it, each block carrying its softmax state from chunk to chunk (in `out` and the
// carry); the same mechanism bounds the engine's memory at any n. Chunks of several heads
// are packed at once, within the budget, so that every thread has work (bench/TUNING.md
// "Key chunk").
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>

#include <array>
#include <vector>

#include "engine/flash_schedules.hpp"
#include "engine/query_block.hpp"
#include "simd/denormals.hpp"

namespace longattn::engine {
namespace {

// Panels one packing task takes.
constexpr std::int64_t kPanelsPerTask = 16;

template <class Q, class KV>
class Chunks {
 public:
  Chunks(const FlashInputs<Q, KV>& in, const Schedule& schedule, RunScratch& scratch)
      : in_(in), blocks_(in), schedule_(schedule), scratch_(scratch),
        q_blocks_((in.plan.shape.nq + in.plan.block_rows - 1) / in.plan.block_rows),
        span_batches_(in.plan.visibility.depends_on_batch() ? in.plan.shape.batch : 1),
        chunk_floats_(schedule.chunk_keys * (in.layout.d + (in.values_in_place ? 0 : in.value_width))),
        packed_(schedule.heads_at_once * chunk_floats_) {
    const std::int64_t carry_floats = 2 * schedule.heads_at_once * in.plan.shape.group() * in.plan.shape.nq;
    if (schedule.chunks > 1) scratch.carry.resize(carry_floats);
    find_chunk_spans();
    scratch.shared_bytes = packed_.bytes() + (schedule.chunks > 1 ? scratch.carry.bytes() : 0) +
                           static_cast<std::int64_t>(chunk_span_.size() * sizeof(chunk_span_[0]));
  }

  // Rounds of heads_at_once kv heads, each chunk packed, then every query block run over it.
  void run() {
    const std::int64_t heads = in_.plan.shape.batch * in_.plan.shape.kv_heads;
    for (std::int64_t first = 0; first < heads; first += schedule_.heads_at_once) {
      const std::int64_t count = std::min(schedule_.heads_at_once, heads - first);
      for (std::int64_t c = 0; c < schedule_.chunks; ++c) {
        pack_chunk(first, count, c);
        run_blocks(first, count, c);
      }
    }
  }

 private:
  // The chunks each query block needs: from the first to the last key it may see.
  void find_chunk_spans() {
    chunk_span_.resize(static_cast<std::size_t>(span_batches_ * q_blocks_));
    tbb::parallel_for(std::int64_t{0}, span_batches_ * q_blocks_, [&](std::int64_t cell) {
      std::vector<KeyRange> ranges;
      const std::int64_t i0 = cell % q_blocks_ * in_.plan.block_rows;
      in_.plan.visibility.key_ranges(cell / q_blocks_, i0, std::min(in_.plan.shape.nq, i0 + in_.plan.block_rows),
                                     ranges);
      const std::int64_t keys = schedule_.chunk_keys;
      chunk_span_[cell] = ranges.empty() ? std::array<std::int64_t, 2>{0, 0}
                                         : std::array<std::int64_t, 2>{ranges.front().begin / keys,
                                                                       (ranges.back().end - 1) / keys};
    });
  }

  void pack_chunk(std::int64_t first, std::int64_t count, std::int64_t c) {
    const std::int64_t P = in_.layout.panel_width, D = in_.layout.d, W = in_.value_width;
    const std::int64_t keys = schedule_.chunk_keys, p_begin = c * keys / P;
    const std::int64_t p_end = std::min(in_.layout.panels(), (c + 1) * keys / P);
    const std::int64_t tasks_per_head = (p_end - p_begin + kPanelsPerTask - 1) / kPanelsPerTask;
    tbb::parallel_for(std::int64_t{0}, count * tasks_per_head, [&](std::int64_t task) {
      const std::int64_t local = task / tasks_per_head;
      const std::int64_t p0 = p_begin + (task % tasks_per_head) * kPanelsPerTask;
      const std::int64_t p1 = std::min(p_end, p0 + kPanelsPerTask);
      float* packed = packed_.data() + local * chunk_floats_;
      in_.pack_panels(first + local, p0, p1, packed + (p0 - p_begin) * P * D,
                      in_.values_in_place ? nullptr : packed + keys * D + (p0 - p_begin) * P * W,
                      PanelStores::streamed);
    });
  }

  // Work units are (kv head, query head of its group, query block): partitioned by data
  // alone, so every output element is computed the same way for any thread count.
  void run_blocks(std::int64_t first, std::int64_t count, std::int64_t c) {
    const AttentionShape& s = in_.plan.shape;
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(0, count * s.group() * q_blocks_, 1),
        [&](const tbb::blocked_range<std::int64_t>& range) {
          const simd::DenormalsFlushed flushed;
          BlockScratch& local = scratch_.blocks.local();
          for (std::int64_t unit = range.begin(); unit != range.end(); ++unit) {
            const std::int64_t qb = unit % q_blocks_, in_group = unit / q_blocks_ % s.group();
            run_unit(local, first + unit / q_blocks_ / s.group(), unit / q_blocks_ / s.group(), in_group, qb, c);
          }
        },
        tbb::simple_partitioner());
  }

  // Query block qb of query head `in_group` of kv head `head` (the round's `local`-th) over
  // chunk c, if it sees any of its keys.
  void run_unit(BlockScratch& scratch, std::int64_t head, std::int64_t local, std::int64_t in_group, std::int64_t qb,
                std::int64_t c) const {
    const AttentionShape& s = in_.plan.shape;
    const std::int64_t b = head / s.kv_heads, h = head % s.kv_heads, qh = h * s.group() + in_group;
    const auto [first_chunk, last_chunk] = chunk_span_[(span_batches_ > 1 ? b : 0) * q_blocks_ + qb];
    if (c < first_chunk || c > last_chunk) return;
    // The next query block's rows of q and out (from memory: a head's rows outgrow L2) are
    // fetched while this one runs, where q's rows lie back to back; rows far apart are left
    // to the hardware (bench/TUNING.md "Prefetching").
    scratch.prefetch.clear();
    if (qb + 1 < q_blocks_ && in_.q_rows_back_to_back) {
      in_.queue_rows(scratch.prefetch, b, qh, (qb + 1) * in_.plan.block_rows);
    }
    const std::int64_t keys = schedule_.chunk_keys;
    const float* packed = packed_.data() + local * chunk_floats_;
    const float* values = in_.values_in_place ? in_.row_in_place(in_.v, b, h, c * keys) : packed + keys * in_.layout.d;
    const KeyChunk<KV> chunk{c * keys, (c + 1) * keys, packed, values,
                             in_.values_in_place ? in_.v.strides[2] : in_.value_width};
    float* carry = schedule_.chunks > 1 ? scratch_.carry.data() + 2 * (local * s.group() + in_group) * s.nq : nullptr;
    blocks_.run(scratch, b, qh, qb * in_.plan.block_rows, chunk, Handoff{c == first_chunk, c == last_chunk, carry});
  }

  const FlashInputs<Q, KV>& in_;
  QueryBlocks<Q, KV> blocks_;
  const Schedule& schedule_;
  RunScratch& scratch_;
  std::int64_t q_blocks_, span_batches_, chunk_floats_;
  PooledBuffer packed_;
  std::vector<std::array<std::int64_t, 2>> chunk_span_;
};

}  // namespace

template <class Q, class KV>
void run_chunks(const FlashInputs<Q, KV>& in, const Schedule& schedule, RunScratch& scratch) {
  Chunks<Q, KV>(in, schedule, scratch).run();
}

LONGATTN_INSTANTIATE_SCHEDULE(run_chunks)

}  // namespace longattn::engine
