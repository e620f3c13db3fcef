// The streaming-softmax driver (FlashAttention-2 on a CPU, DESIGN.md §3): a plan's schedule
// chosen for the inputs at hand, then run.
#pragma once

#include <algorithm>

#include "engine/flash_plan.hpp"
#include "engine/run_scratch.hpp"
#include "engine/schedule.hpp"
#include "longattn/options.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn::engine {

struct KeyPages;

// A run's stats added to those of earlier runs of one call (one per sequence): work summed,
// scratch the most any run held.
inline void add_run(AttentionStats& total, const AttentionStats& run) {
  total.flops += run.flops;
  total.visible_pairs += run.visible_pairs;
  total.computed_pairs += run.computed_pairs;
  total.scratch_bytes = std::max(total.scratch_bytes, run.scratch_bytes);
  total.isa = run.isa;
  total.bf16_products = total.bf16_products || run.bf16_products;
  total.qk_int8 = total.qk_int8 || run.qk_int8;
}

// The schedule `plan` runs q, k, v and out with on `threads` threads (0: TBB's default).
template <class Q, class KV>
Schedule schedule_for(const FlashPlan& plan, const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                      const HeadsView<const KV>& v, const HeadsView<float>& out, int threads);

// Runs the plan; q, k, v, out, lse must be the views it was validated with. Q, KV: float and
// float, bf16 and bf16, or float and bf16. `scratch`, when given, is made for this plan and
// used by one run at a time; otherwise the run makes its own. With `pages`, keys and values
// are read from a KvCache's pages, k and v giving only their shape: the schedule must then
// be split keys read in place (schedule_for says).
template <class Q, class KV>
AttentionStats run_flash_attention(const FlashPlan& plan, const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                   const HeadsView<const KV>& v, const HeadsView<float>& out,
                                   const TensorView<float, 3>& lse, RunScratch* scratch = nullptr,
                                   const KeyPages* pages = nullptr);

}  // namespace longattn::engine
