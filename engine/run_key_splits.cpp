// Split keys (split-K, FlashDecoding's scheme on a CPU): when a kv head's queries are few
// (decoding, a few new tokens against a long cache), its keys are cut into splits that run as
// tasks of their own, each leaving partial outputs that merge by their row max and sum. A task
// takes its split tile by tile, every query of the group over each tile while it is in cache,
// the rows read in order. Packing a head once for all its query blocks has nothing to amortize
// here (bench/TUNING.md "Decoding rows read in place").
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/partitioner.h>

#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/flash_schedules.hpp"
#include "engine/key_pages.hpp"
#include "engine/query_block.hpp"
#include "simd/denormals.hpp"

namespace longattn::engine {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

template <class Q, class KV>
class KeySplits {
 public:
  KeySplits(const FlashInputs<Q, KV>& in, const Schedule& schedule)
      : in_(in), blocks_(in), schedule_(schedule), part_(split_partial_floats(in.plan.shape.nq, in.plan.dv_padded)) {}

  std::int64_t partial_floats() const { return part_; }

  // Split `task % splits` of kv head `task / splits` into its group's partials.
  void run(BlockScratch& local, std::int64_t task, float* group_partials) const {
    const AttentionShape& s = in_.plan.shape;
    const std::int64_t head = task / schedule_.splits, b = head / s.kv_heads, split_index = task % schedule_.splits;
    const KeyRange split{split_index * schedule_.split_keys,
                         std::min(in_.layout.nk_padded(), (split_index + 1) * schedule_.split_keys)};
    const KeyRange seen = in_.plan.visibility.hull(b, 0, s.nq);
    if (seen.empty() || seen.end <= split.begin || seen.begin >= split.end) {  // no query sees these keys
      for (std::int64_t g = 0; g < s.group(); ++g) leave_empty(group_partials + g * part_);
    } else if (schedule_.stack_heads) {
      run_stacked(local, head, split, group_partials);
    } else {
      run_by_head(local, head, split, group_partials);
    }
  }

  // Each query row's output from its partials: Σ_s 2^(max_s - max) acc_s / Σ_s 2^(max_s -
  // max) sum_s, in split order (the same bits for any thread count); out and lse as a
  // block's last tile writes them.
  void merge(const float* partials, std::int64_t query_head) const {
    const AttentionShape& s = in_.plan.shape;
    const std::int64_t W = in_.plan.dv_padded, G = s.group(), nq = s.nq, count = schedule_.splits;
    const bool softmax = in_.plan.normalizer == Normalizer::softmax;
    const std::int64_t b = query_head / s.q_heads, qh = query_head % s.q_heads;
    const float* first = partials + ((b * s.kv_heads + qh / G) * count * G + qh % G) * part_;
    auto partial = [&](std::int64_t split) { return first + split * G * part_; };
    std::vector<float> row(static_cast<std::size_t>(W));
    for (std::int64_t r = 0; r < nq; ++r) {
      float max = kNegInf, sum = 0.0f;
      for (std::int64_t split = 0; softmax && split < count; ++split) max = std::max(max, partial(split)[nq * W + r]);
      std::fill(row.begin(), row.end(), 0.0f);
      for (std::int64_t split = 0; split < count; ++split) {
        const float* p = partial(split);
        const float split_max = p[nq * W + r];
        // A split that saw no key adds nothing; any other adds weight · its sums, also where
        // the weight underflowed to 0 (0 · NaN is NaN, as for any key the row sees).
        if (softmax && split_max == kNegInf) continue;
        const float weight = !softmax ? 1.0f : std::exp2(split_max - max);
        sum += weight * p[nq * (W + 1) + r];
        for (std::int64_t c = 0; c < s.dv; ++c) row[c] += weight * p[r * W + c];
      }
      const float factor = blocks_.rows().fold_sink(qh, max, sum);
      const float scale = factor * blocks_.rows().output_scale(sum);
      blocks_.rows().write_lse(b, qh, r, max, sum);
      float* out_row = blocks_.rows().out_row(b, qh, r);
      for (std::int64_t c = 0; c < s.dv; ++c) out_row[c * in_.out.strides[3]] = row[c] * scale;
    }
  }

 private:
  // A partial of keys no query sees: zero output, max -inf, sum 0.
  void leave_empty(float* partial) const {
    const std::int64_t nq = in_.plan.shape.nq, W = in_.plan.dv_padded;
    std::fill(partial, partial + nq * W, 0.0f);
    std::fill(partial + nq * W, partial + nq * (W + 1), kNegInf);
    std::fill(partial + nq * (W + 1), partial + part_, 0.0f);
  }

  // The keys of a split of kv head `head` tile by tile, as the rows of a block of all its
  // queries see them, each tile's keys and values read where they lie (rows_in_place) or
  // copied in sequential runs and packed: either way each row comes from memory once, in
  // order, and every query of the group runs over it while it is in cache. run(keys, tile).
  template <class RunTile>
  void for_each_tile(BlockScratch& local, std::int64_t head, KeyRange split, RunTile run) const {
    const std::int64_t b = head / in_.plan.shape.kv_heads, h = head % in_.plan.shape.kv_heads;
    const std::int64_t P = in_.layout.panel_width, D = in_.layout.d, W = in_.value_width;
    blocks_.plan_tiles(local, b, 0, in_.plan.shape.nq, split.begin, split.end);
    if (in_.pages != nullptr) {
      for (const KeyRange& tile : local.tiles) run(in_.pages->template tile<KV>(local.band, h, tile.begin, tile.end), tile);
      return;
    }
    if (schedule_.rows_in_place) {
      const KeyChunk<KV> in_place{split.begin, split.end, nullptr, nullptr, in_.v.strides[2],
                                  in_.caller_row(in_.k, b, h, split.begin), in_.k.strides[2],
                                  in_.caller_row(in_.v, b, h, split.begin)};
      for (const KeyRange& tile : local.tiles) run(in_place, tile);
      return;
    }
    local.band.resize((in_.plan.max_tile_keys() + P) * (D + W));
    const std::vector<KeyRange>& tiles = local.tiles;
    auto panels_of = [P](const KeyRange& tile) { return std::array{tile.begin / P, (tile.end + P - 1) / P}; };
    for (std::size_t t = 0; t < tiles.size(); ++t) {
      const auto [p0, p1] = panels_of(tiles[t]);
      float* keys = local.band.data();
      float* values = keys + (p1 - p0) * P * D;
      in_.pack_panels(head, p0, p1, keys, values, PanelStores::cached, KeyReads::staged);
      // The next tile's rows fetched while this one runs, so that much of its copy reads
      // cache rather than memory (bench/TUNING.md "Prefetching").
      local.prefetch.clear();
      if (t + 1 < tiles.size()) {
        const auto [next0, next1] = panels_of(tiles[t + 1]);
        in_.queue_key_rows(local.prefetch, b, h, next0 * P, std::min(next1 * P, in_.plan.shape.nk));
      }
      run(KeyChunk<KV>{p0 * P, p1 * P, keys, values, W}, tiles[t]);
    }
  }

  // Every query head of the group as one block: row g·Nq + i is query i of the group's head
  // g, so each key and value row read, or each packed tile, serves all of them at once.
  void run_stacked(BlockScratch& local, std::int64_t head, KeyRange split, float* group_partials) const {
    const AttentionShape& s = in_.plan.shape;
    const std::int64_t b = head / s.kv_heads, first_head = head % s.kv_heads * s.group();
    const std::int64_t G = s.group(), nq = s.nq, rows = G * nq, depth = in_.plan.score_depth;
    const std::int64_t W = in_.plan.dv_padded;
    RowState st(local.rows.data(), in_.plan.block_rows);
    st.queries_per_head = G > 1 ? nq : 0;  // one head: a plain block (sliced at a mask's edges)
    float* q = local.q.data();
    for (std::int64_t g = 0; g < G; ++g) {
      float* head_rows = q + g * nq * depth;
      const float* from = in_.query_rows(head_rows, b, first_head + g, 0, nq);
      if (from != head_rows) std::copy_n(from, nq * depth, head_rows);
    }
    st.q = q;
    st.acc = local.acc.data();
    blocks_.rows().start(st, rows);
    for_each_tile(local, head, split, [&](const KeyChunk<KV>& keys, const KeyRange& tile) {
      blocks_.run_tiles(local, st, keys, b, first_head, 0, rows, tile.begin, tile.end);
    });
    for (std::int64_t g = 0; g < G; ++g) {  // as a block's close leaves a partial
      float* partial = group_partials + g * part_;
      std::copy_n(st.acc + g * nq * W, nq * W, partial);
      std::copy_n(st.max + g * nq, nq, partial + nq * W);
      std::copy_n(st.sum + g * nq, nq, partial + nq * (W + 1));
    }
  }

  // Each query head of the group as a block of its own (each head's position bias differs),
  // tile by tile: the heads' states side by side in the scratch.
  void run_by_head(BlockScratch& local, std::int64_t head, KeyRange split, float* group_partials) const {
    const AttentionShape& s = in_.plan.shape;
    const std::int64_t b = head / s.kv_heads, first_head = head % s.kv_heads * s.group();
    const std::int64_t G = s.group(), nq = s.nq, W = in_.plan.dv_padded;
    auto handoff = [&](std::int64_t g) {  // query head g of the group: its partial, from scratch
      float* partial = group_partials + g * part_;
      return Handoff{true, false, partial + nq * W, false, partial};
    };
    std::vector<RowState> states;
    for (std::int64_t g = 0; g < G; ++g) {
      states.push_back(blocks_.rows().open(local, g * nq, b, first_head + g, 0, nq, handoff(g)));
    }
    for_each_tile(local, head, split, [&](const KeyChunk<KV>& keys, const KeyRange& tile) {
      for (std::int64_t g = 0; g < G; ++g) {
        blocks_.run_tiles(local, states[g], keys, b, first_head + g, 0, nq, tile.begin, tile.end);
      }
    });
    for (std::int64_t g = 0; g < G; ++g) blocks_.rows().close(states[g], b, first_head + g, 0, nq, handoff(g));
  }

  const FlashInputs<Q, KV>& in_;
  QueryBlocks<Q, KV> blocks_;
  const Schedule& schedule_;
  std::int64_t part_;  // floats of one partial
};

}  // namespace

template <class Q, class KV>
void run_key_splits(const FlashInputs<Q, KV>& in, const Schedule& schedule, RunScratch& scratch) {
  const AttentionShape& s = in.plan.shape;
  const KeySplits<Q, KV> splits(in, schedule);
  const std::int64_t G = s.group(), part = splits.partial_floats();
  const std::int64_t tasks = s.batch * s.kv_heads * schedule.splits;
  scratch.partials.resize(tasks * G * part);
  scratch.shared_bytes = scratch.partials.bytes();
  float* partials = scratch.partials.data();
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, tasks, 1),
      [&](const tbb::blocked_range<std::int64_t>& range) {
        const simd::DenormalsFlushed flushed;
        BlockScratch& local = scratch.blocks.local();
        for (std::int64_t task = range.begin(); task != range.end(); ++task) {
          splits.run(local, task, partials + task * G * part);
        }
      },
      tbb::simple_partitioner());
  tbb::parallel_for(std::int64_t{0}, s.batch * s.q_heads,
                    [&](std::int64_t query_head) { splits.merge(partials, query_head); });
}

LONGATTN_INSTANTIATE_SCHEDULE(run_key_splits)

}  // namespace longattn::engine
