// The public kernel entry point: a plan made and run once.
#include "longattn/attention.hpp"

#include <algorithm>

#include "engine/aligned_buffer.hpp"
#include "engine/attention_validation.hpp"
#include "engine/input_elements.hpp"
#include "engine/window_plan.hpp"
#include "longattn/plan.hpp"

namespace longattn {

namespace {

// The one-call form of a plan: the views' errors first, then the options'.
template <class Q, class KV>
AttentionStats validate_and_run(const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                const HeadsView<const KV>& v, const HeadsView<float>& out,
                                const AttentionOptions& options, const TensorView<float, 3>& lse) {
  const engine::AttentionShape s = engine::validate_views(q, k, v, out, lse);
  const AttentionProblem problem{.batch = s.batch, .q_heads = s.q_heads, .kv_heads = s.kv_heads, .nq = s.nq,
                                 .nk = s.nk, .d = s.d, .dv = s.dv, .q_type = dtype_of<Q>(), .kv_type = dtype_of<KV>()};
  return AttentionPlan(problem, options).run(q, k, v, out, lse);
}

// The fp32 result in a copy of out's shape, then rounded into out (validated first, as out).
template <class Q, class KV>
AttentionStats run_into_bf16(const HeadsView<const Q>& q, const HeadsView<const KV>& k, const HeadsView<const KV>& v,
                             const HeadsView<bf16>& out, const AttentionOptions& options,
                             const TensorView<float, 3>& lse) {
  const engine::AttentionShape s = engine::validate_views(q, k, v, out, lse);
  const std::int64_t rows = s.batch * s.q_heads * s.nq;
  engine::AlignedBuffer staged(std::max<std::int64_t>(1, rows * s.dv));
  const HeadsView<float> wide = bhnd(staged.data(), s.batch, s.q_heads, s.nq, s.dv);
  const AttentionProblem problem{.batch = s.batch, .q_heads = s.q_heads, .kv_heads = s.kv_heads, .nq = s.nq,
                                 .nk = s.nk, .d = s.d, .dv = s.dv, .q_type = dtype_of<Q>(), .kv_type = dtype_of<KV>()};
  AttentionStats stats = AttentionPlan(problem, options).run(q, k, v, wide, lse);
  engine::write_rounded(staged.data(), out);
  stats.scratch_bytes += staged.bytes();
  return stats;
}

}  // namespace

AttentionStats attention(HeadsView<const float> q, HeadsView<const float> k, HeadsView<const float> v,
                         HeadsView<bf16> out, const AttentionOptions& options, TensorView<float, 3> lse) {
  return run_into_bf16(q, k, v, out, options, lse);
}

AttentionStats attention(HeadsView<const bf16> q, HeadsView<const bf16> k, HeadsView<const bf16> v,
                         HeadsView<bf16> out, const AttentionOptions& options, TensorView<float, 3> lse) {
  return run_into_bf16(q, k, v, out, options, lse);
}

AttentionStats attention(HeadsView<const float> q, HeadsView<const bf16> k, HeadsView<const bf16> v,
                         HeadsView<bf16> out, const AttentionOptions& options, TensorView<float, 3> lse) {
  return run_into_bf16(q, k, v, out, options, lse);
}

AttentionStats attention(HeadsView<const float> q, HeadsView<const float> k,
                         HeadsView<const float> v, HeadsView<float> out,
                         const AttentionOptions& options, TensorView<float, 3> lse) {
  return validate_and_run(q, k, v, out, options, lse);
}

AttentionStats attention(HeadsView<const bf16> q, HeadsView<const bf16> k,
                         HeadsView<const bf16> v, HeadsView<float> out,
                         const AttentionOptions& options, TensorView<float, 3> lse) {
  return validate_and_run(q, k, v, out, options, lse);
}

AttentionStats attention(HeadsView<const float> q, HeadsView<const bf16> k,
                         HeadsView<const bf16> v, HeadsView<float> out,
                         const AttentionOptions& options, TensorView<float, 3> lse) {
  return validate_and_run(q, k, v, out, options, lse);
}

std::int64_t release_scratch() { return engine::PooledBuffer::release_kept(); }

std::int64_t visible_pairs(std::int64_t nq, std::int64_t nk, Window window) {
  return engine::WindowPlan(nq, nk, window).visible_pairs();
}

}  // namespace longattn
