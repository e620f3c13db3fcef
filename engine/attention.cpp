// The public kernel entry point: validate, plan, run.
#include "longattn/attention.hpp"

#include "engine/aligned_buffer.hpp"
#include "engine/attention_validation.hpp"
#include "engine/flash_attention.hpp"
#include "engine/linear_attention.hpp"
#include "engine/window_plan.hpp"

namespace longattn {

namespace {

template <class Q, class KV>
AttentionStats validate_and_run(const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                const HeadsView<const KV>& v, const HeadsView<float>& out,
                                const AttentionOptions& options, const TensorView<float, 3>& lse) {
  const engine::AttentionShape shape = engine::validate_attention(q, k, v, out, lse, options);
  if (options.normalizer == Normalizer::linear) return engine::run_linear_attention(shape, options, q, k, v, out);
  const engine::FlashPlan plan = engine::make_flash_plan(shape, options);
  return engine::run_flash_attention(plan, q, k, v, out, lse);
}

}  // namespace

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
