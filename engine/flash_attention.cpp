#include "engine/flash_attention.hpp"

#include <oneapi/tbb/task_arena.h>

#include <optional>
#include <stdexcept>

#include "engine/flash_inputs.hpp"
#include "engine/flash_schedules.hpp"
#include "engine/key_pages.hpp"

namespace longattn::engine {
namespace {

// What a run did: DESIGN.md §4's FLOPs, per visible pair the score (D multiply-adds, or Da
// tanh terms) and its row of P·V; the scores computed and the scratch held.
AttentionStats stats_of(const FlashPlan& plan, const RunScratch& scratch, bool bf16_products, bool qk_int8) {
  AttentionStats stats;
  stats.visible_pairs = plan.visibility.visible_pairs() * plan.shape.q_heads;
  stats.flops = 2.0 * static_cast<double>(plan.score_depth + plan.shape.dv) * static_cast<double>(stats.visible_pairs);
  stats.scratch_bytes = scratch.bytes() + plan.visibility.scratch_bytes();
  stats.computed_pairs = scratch.computed_pairs();
  stats.isa = plan.kernels->isa;
  stats.bf16_products = bf16_products;
  stats.qk_int8 = qk_int8;
  return stats;
}

}  // namespace

template <class Q, class KV>
Schedule schedule_for(const FlashPlan& plan, const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                      const HeadsView<const KV>& v, const HeadsView<float>& out, int threads) {
  const TensorView<float, 3> no_lse;
  const FlashInputs<Q, KV> in(plan, q, k, v, out, no_lse);
  return choose_schedule(in.schedule_facts(threads > 0 ? threads : tbb::this_task_arena::max_concurrency()));
}

template <class Q, class KV>
AttentionStats run_flash_attention(const FlashPlan& plan, const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                   const HeadsView<const KV>& v, const HeadsView<float>& out,
                                   const TensorView<float, 3>& lse, RunScratch* scratch, const KeyPages* pages) {
  std::optional<RunScratch> own;
  RunScratch& work = scratch != nullptr ? *scratch : own.emplace(plan);
  work.restart();
  if (plan.shape.batch == 0 || plan.shape.nq == 0) return stats_of(plan, work, false, false);  // no row to write
  return work.on_threads([&] {
    const std::vector<float> key_means = plan.int8_dot != nullptr ? smoothing_means(plan, k) : std::vector<float>();
    const FlashInputs<Q, KV> in(plan, q, k, v, out, lse, pages, key_means);
    const Schedule schedule = choose_schedule(in.schedule_facts(tbb::this_task_arena::max_concurrency()));
    if (pages != nullptr && !(schedule.kind == ScheduleKind::key_splits && schedule.rows_in_place)) {
      throw std::logic_error("run_flash_attention: pages are read by split keys in place alone");
    }
    switch (schedule.kind) {
      case ScheduleKind::key_splits: run_key_splits(in, schedule, work); break;
      case ScheduleKind::bands: run_bands(in, schedule, work); break;
      case ScheduleKind::chunks: run_chunks(in, schedule, work); break;
    }
    // Decoding reads int8 scores' queries against an int8 cache's rows alone.
    const bool int8_rows = plan.int8_rows != nullptr && pages != nullptr && pages->type == CacheType::int8;
    return stats_of(plan, work, in.pairs != nullptr, in.quads != nullptr || int8_rows);
  });
}

#define LONGATTN_INSTANTIATE_DRIVER(Q, KV)                                                                          \
  template Schedule schedule_for(const FlashPlan&, const HeadsView<const Q>&, const HeadsView<const KV>&,        \
                                 const HeadsView<const KV>&, const HeadsView<float>&, int);                      \
  template AttentionStats run_flash_attention(const FlashPlan&, const HeadsView<const Q>&,                       \
                                              const HeadsView<const KV>&, const HeadsView<const KV>&,            \
                                              const HeadsView<float>&, const TensorView<float, 3>&, RunScratch*,        \
                                              const KeyPages*);
LONGATTN_INSTANTIATE_DRIVER(float, float)
LONGATTN_INSTANTIATE_DRIVER(bf16, bf16)
LONGATTN_INSTANTIATE_DRIVER(float, bf16)

}  // namespace longattn::engine
