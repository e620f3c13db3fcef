// Bands: a task takes consecutive query blocks of a kv head and packs, into a buffer of its
// thread, the key panels each block sees that the ones before it did not, just before running
// it. So each key is packed about once, into the caches it is read from right after, and no
// buffer grows with n; the next block's rows are fetched between register blocks
// (bench/TUNING.md "Bands").
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>

#include "engine/flash_schedules.hpp"
#include "engine/query_block.hpp"
#include "simd/denormals.hpp"

namespace longattn::engine {
namespace {

// Kv head `head`'s query blocks [qb0, qb1), which see the key panels [p_first, p_last).
struct BandTask {
  std::int64_t head, qb0, qb1, p_first, p_last;
};

template <class Q, class KV>
class Bands {
 public:
  Bands(const FlashInputs<Q, KV>& in, const Schedule& schedule)
      : in_(in), blocks_(in), band_blocks_(schedule.band_blocks), bands_(schedule.bands),
        q_blocks_((in.plan.shape.nq + in.plan.block_rows - 1) / in.plan.block_rows) {}

  std::int64_t tasks() const { return in_.plan.shape.batch * in_.plan.shape.kv_heads * bands_; }

  void run(BlockScratch& local, std::int64_t task) const {
    const AttentionShape& s = in_.plan.shape;
    const std::int64_t P = in_.layout.panel_width, D = in_.layout.d, W = in_.value_width;
    const BandTask band = band_task(task);
    const auto [head, qb0, qb1, p_first, p_last] = band;
    const std::int64_t b = head / s.kv_heads, h = head % s.kv_heads;
    const std::int64_t band_keys = (p_last - p_first) * P;
    local.band.resize(band_keys * (D + (in_.values_in_place ? 0 : W)));
    float* keys = local.band.data();
    float* values = in_.values_in_place ? nullptr : keys + band_keys * D;
    const float* value_rows = in_.values_in_place ? in_.row_in_place(in_.v, b, h, p_first * P) : values;
    std::int64_t packed_until = p_first;
    const KeyChunk<KV> sinks = pack_sinks(local, band);
    if (sinks.end > 0) local.carry.resize(static_cast<std::size_t>(2 * s.nq));
    for (std::int64_t qb = qb0; qb < qb1; ++qb) {
      const std::int64_t i0 = qb * in_.plan.block_rows, i1 = std::min(s.nq, i0 + in_.plan.block_rows);
      const KeyRange seen = in_.plan.visibility.window_hull(b, i0, i1);
      const std::int64_t p_end = seen.empty() ? packed_until : std::min(p_last, (seen.end + P - 1) / P);
      queue_next(local.prefetch, task, qb, qb1, p_end, p_last);
      if (p_end > packed_until) {
        in_.pack_panels(head, packed_until, p_end, keys + (packed_until - p_first) * P * D,
                        values == nullptr ? nullptr : values + (packed_until - p_first) * P * W, PanelStores::cached);
        packed_until = p_end;
      }
      const KeyChunk<KV> chunk{p_first * P, packed_until * P, keys, value_rows,
                               in_.values_in_place ? in_.v.strides[2] : W};
      const bool with_sinks = sinks.end > 0 && in_.plan.visibility.sinks_end(b, i1 - 1) > 0;
      for (std::int64_t in_group = 0; in_group < s.group(); ++in_group) {
        const std::int64_t qh = h * s.group() + in_group;
        if (!with_sinks) {
          blocks_.run(local, b, qh, i0, chunk, Handoff{true, true, nullptr, qb > qb0});
          continue;
        }
        blocks_.run(local, b, qh, i0, sinks, Handoff{true, false, local.carry.data()});
        blocks_.run(local, b, qh, i0, chunk, Handoff{false, true, local.carry.data(), qb > qb0});
      }
    }
  }

 private:
  // The sink keys the task's blocks see before its band's first panel, packed into the
  // thread's buffer (a chunk of keys [0, 0) when there are none): each block runs them first.
  KeyChunk<KV> pack_sinks(BlockScratch& local, const BandTask& band) const {
    const std::int64_t P = in_.layout.panel_width, D = in_.layout.d, W = in_.value_width;
    const auto [head, qb0, qb1, p_first, p_last] = band;
    const std::int64_t b = head / in_.plan.shape.kv_heads, h = head % in_.plan.shape.kv_heads;
    const std::int64_t last_row = std::min(in_.plan.shape.nq, qb1 * in_.plan.block_rows) - 1;
    // Up to the band's own keys, which hold the rest of the sink keys when they reach that far.
    const std::int64_t sink_panels = (in_.plan.visibility.sinks_end(b, last_row) + P - 1) / P;
    const std::int64_t panels = p_last > p_first ? std::min(p_first, sink_panels) : sink_panels;
    if (panels <= 0) return KeyChunk<KV>{0, 0, nullptr, nullptr, 0};
    local.sinks.resize(panels * P * (D + (in_.values_in_place ? 0 : W)));
    float* keys = local.sinks.data();
    float* values = in_.values_in_place ? nullptr : keys + panels * P * D;
    in_.pack_panels(head, 0, panels, keys, values, PanelStores::cached);
    return KeyChunk<KV>{0, panels * P, keys, in_.values_in_place ? in_.row_in_place(in_.v, b, h, 0) : values,
                        in_.values_in_place ? in_.v.strides[2] : W};
  }

  BandTask band_task(std::int64_t task) const {
    const std::int64_t P = in_.layout.panel_width, Br = in_.plan.block_rows;
    const std::int64_t head = task / bands_, b = head / in_.plan.shape.kv_heads;
    const std::int64_t qb0 = task % bands_ * band_blocks_, qb1 = std::min(q_blocks_, qb0 + band_blocks_);
    const KeyRange band = in_.plan.visibility.window_hull(b, qb0 * Br, std::min(in_.plan.shape.nq, qb1 * Br));
    if (band.empty()) return {head, qb0, qb1, 0, 0};
    return {head, qb0, qb1, band.begin / P, std::min(in_.layout.panels(), (band.end + P - 1) / P)};
  }

  // The rows the thread reads next, fetched while block qb runs: the band's next block, or the
  // next task's first, usually this thread's next (a range is split in halves, each run in
  // order); a guess that costs nothing when another thread takes it.
  void queue_next(simd::PrefetchQueue& queue, std::int64_t task, std::int64_t qb, std::int64_t qb1,
                  std::int64_t p_end, std::int64_t p_last) const {
    queue.clear();
    const std::int64_t kv_heads = in_.plan.shape.kv_heads;
    if (qb + 1 < qb1) {
      const std::int64_t head = task / bands_;
      queue_block(queue, head / kv_heads, head % kv_heads, qb + 1, p_end, p_last);
    } else if (task + 1 < tasks()) {
      const BandTask next = band_task(task + 1);
      queue_block(queue, next.head / kv_heads, next.head % kv_heads, next.qb0, next.p_first, next.p_last);
    }
  }

  // Queues the rows of q and out (every query head of kv head h's group) and the new rows of
  // k and v that query block qb reads and writes, from panel `packed_until` on.
  void queue_block(simd::PrefetchQueue& queue, std::int64_t b, std::int64_t h, std::int64_t qb,
                   std::int64_t packed_until, std::int64_t p_last) const {
    const AttentionShape& s = in_.plan.shape;
    const std::int64_t P = in_.layout.panel_width, i0 = qb * in_.plan.block_rows;
    const std::int64_t rows = std::min(in_.plan.block_rows, s.nq - i0);
    for (std::int64_t in_group = 0; in_group < s.group(); ++in_group) in_.queue_rows(queue, b, h * s.group() + in_group, i0);
    const KeyRange seen = in_.plan.visibility.window_hull(b, i0, i0 + rows);  // packed to the end of its panel
    in_.queue_key_rows(queue, b, h, packed_until * P, std::min({(seen.end + P - 1) / P * P, p_last * P, s.nk}));
  }

  const FlashInputs<Q, KV>& in_;
  QueryBlocks<Q, KV> blocks_;
  std::int64_t band_blocks_, bands_, q_blocks_;
};

}  // namespace

template <class Q, class KV>
void run_bands(const FlashInputs<Q, KV>& in, const Schedule& schedule, RunScratch& scratch) {
  const Bands<Q, KV> bands(in, schedule);
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, bands.tasks(), 1),
      [&](const tbb::blocked_range<std::int64_t>& range) {
        const simd::DenormalsFlushed flushed;
        BlockScratch& local = scratch.blocks.local();
        for (std::int64_t task = range.begin(); task != range.end(); ++task) bands.run(local, task);
      },
      tbb::simple_partitioner());
}

LONGATTN_INSTANTIATE_SCHEDULE(run_bands)

}  // namespace longattn::engine
