// Describe, then run: an attention problem validated and planned once, run any number of
// times (a decoding loop, a layer's every forward), from any number of threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>

#include "longattn/bf16.hpp"
#include "longattn/export.hpp"
#include "longattn/options.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn {

enum class DType { f32, bf16 };

LONGATTN_API std::string to_string(DType type);

// The DType of an element type: float or longattn::bf16.
template <class T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>, "attention takes float or bf16 elements");
  return std::is_same_v<T, bf16> ? DType::bf16 : DType::f32;
}

// The sizes and element types a plan is made for: q [batch, q_heads, nq, d], k [batch,
// kv_heads, nk, d], v [batch, kv_heads, nk, dv], out [batch, q_heads, nq, dv] (fp32). Any
// strides: each run reads them from its views. q_type and kv_type: f32 and f32, bf16 and
// bf16, or f32 and bf16 (a bf16 key-value cache).
struct AttentionProblem {
  std::int64_t batch = 1, q_heads = 1, kv_heads = 1;
  std::int64_t nq = 0, nk = 0;
  std::int64_t d = 0;
  std::int64_t dv = 0;  // 0: the same as d
  DType q_type = DType::f32, kv_type = DType::f32;
};

// What a run's schedule is, for a look at how a plan cuts its work (engine/schedule.hpp).
struct AttentionSchedule {
  std::string kind;          // "key_splits", "bands", "chunks", or "linear"
  std::int64_t block_rows = 0, block_keys = 0;  // query rows per block, keys per tile
  std::int64_t tasks = 0;    // splits, bands or chunks per kv head (0 for linear)
  std::int64_t keys_per_task = 0;  // keys per split or chunk, query blocks per band
};

class LONGATTN_API AttentionPlan {
 public:
  // Validates the problem and the options against each other (longattn::Error naming the
  // field, as attention() does) and chooses the schedule. The options' spans and views
  // (key_lengths, mask, block_sparse, additive, relative_bias, score_bias) reference caller memory that
  // must outlive the plan.
  explicit AttentionPlan(const AttentionProblem& problem, const AttentionOptions& options = {});
  ~AttentionPlan();
  AttentionPlan(AttentionPlan&&) noexcept;
  AttentionPlan& operator=(AttentionPlan&&) noexcept;

  // attention() on views of the plan's shape and element types (any strides); a view of
  // another shape or type is an Error naming the field. Each run in flight works in scratch
  // of its own (tiles, partial outputs, a thread arena), which the plan keeps for the next
  // run: a loop of runs reuses it rather than allocating and faulting in fresh scratch each
  // step. lse as attention()'s.
  AttentionStats run(HeadsView<const float> q, HeadsView<const float> k, HeadsView<const float> v,
                     HeadsView<float> out, TensorView<float, 3> lse = {}) const;
  AttentionStats run(HeadsView<const bf16> q, HeadsView<const bf16> k, HeadsView<const bf16> v,
                     HeadsView<float> out, TensorView<float, 3> lse = {}) const;
  AttentionStats run(HeadsView<const float> q, HeadsView<const bf16> k, HeadsView<const bf16> v,
                     HeadsView<float> out, TensorView<float, 3> lse = {}) const;

  const AttentionProblem& problem() const;  // as given, dv filled in
  const AttentionOptions& options() const;
  // The schedule of a run on contiguous BHND views with options.threads threads.
  AttentionSchedule schedule() const;
  // Scratch the plan keeps between runs (the sets of runs now over).
  std::int64_t kept_scratch_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longattn
