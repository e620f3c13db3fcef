// The public plan: a problem validated and planned once; runs borrow scratch sets from the
// plan, one per run in flight, and give them back for the next.
#include "longattn/plan.hpp"

#include <mutex>
#include <new>
#include <stdexcept>
#include <optional>
#include <vector>

#include "engine/attention_validation.hpp"
#include "engine/flash_attention.hpp"
#include "engine/linear_attention.hpp"
#include "engine/packed_sequences.hpp"
#include "longattn/error.hpp"

namespace longattn {
namespace {

[[noreturn]] void fail(const std::string& what) { throw Error("attention: " + what); }

void expect_at_least(std::int64_t value, std::int64_t least, const char* field) {
  if (value < least) {
    fail(std::string("problem.") + field + ": expected >= " + std::to_string(least) + ", got " + std::to_string(value));
  }
}

engine::AttentionShape shape_of(const AttentionProblem& p) {
  expect_at_least(p.batch, 0, "batch");
  expect_at_least(p.q_heads, 1, "q_heads");
  expect_at_least(p.kv_heads, 1, "kv_heads");
  expect_at_least(p.nq, 0, "nq");
  expect_at_least(p.nk, 0, "nk");
  expect_at_least(p.d, 1, "d");
  expect_at_least(p.dv, 0, "dv");
  if (p.q_heads % p.kv_heads != 0) {
    fail("problem.kv_heads: expected a divisor of q_heads (" + std::to_string(p.q_heads) +
         ", grouped-query attention), got " + std::to_string(p.kv_heads));
  }
  if (p.q_type == DType::bf16 && p.kv_type == DType::f32) {
    fail("problem.kv_type: expected bf16 with bf16 queries (bf16 q with fp32 k and v is not a pairing), got f32");
  }
  return {p.batch, p.q_heads, p.kv_heads, p.nq, p.nk, p.d, p.dv == 0 ? p.d : p.dv};
}

// f(), with an allocation the machine cannot make (a problem whose tables or scratch outgrow
// its memory) as the library's Error: the plan's scratch is made before a run writes.
template <class F>
decltype(auto) with_memory_errors(F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    fail("out of memory: the problem's tables and scratch do not fit in this machine's memory");
  } catch (const std::length_error&) {
    fail("out of memory: the problem's tables and scratch outgrow what one allocation can hold");
  }
}

}  // namespace

std::string to_string(DType type) { return type == DType::bf16 ? "bf16" : "f32"; }

struct AttentionPlan::Impl {
  Impl(const AttentionProblem& given, const AttentionOptions& options)
      : problem(given), options(options), shape(shape_of(given)) {
    problem.dv = shape.dv;
    engine::validate_options(shape, options, false);
    // Packed sequences are planned one sequence at a time, as they run.
    if (options.normalizer != Normalizer::linear && !packed()) flash.emplace(engine::make_flash_plan(shape, options));
  }

  // A scratch set of its own for one run, kept or made.
  std::unique_ptr<engine::RunScratch> borrow() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!kept.empty()) {
        std::unique_ptr<engine::RunScratch> scratch = std::move(kept.back());
        kept.pop_back();
        return scratch;
      }
    }
    return std::make_unique<engine::RunScratch>(*flash);
  }
  void give_back(std::unique_ptr<engine::RunScratch> scratch) {
    std::lock_guard<std::mutex> lock(mutex);
    kept.push_back(std::move(scratch));
  }

  // The views against the plan: element types, then every size, then lse.
  template <class Q, class KV>
  void check(const HeadsView<const Q>& q, const HeadsView<const KV>& k, const HeadsView<const KV>& v,
             const HeadsView<float>& out, const TensorView<float, 3>& lse) const {
    if (dtype_of<Q>() != problem.q_type) {
      fail("q: the plan is for " + to_string(problem.q_type) + " queries, got " + to_string(dtype_of<Q>()));
    }
    if (dtype_of<KV>() != problem.kv_type) {
      fail("k: the plan is for " + to_string(problem.kv_type) + " keys and values, got " + to_string(dtype_of<KV>()));
    }
    const engine::AttentionShape s = engine::validate_views(q, k, v, out, lse);
    const std::pair<std::int64_t, std::int64_t> sizes[] = {{s.batch, shape.batch}, {s.q_heads, shape.q_heads},
                                                          {s.kv_heads, shape.kv_heads}, {s.nq, shape.nq},
                                                          {s.nk, shape.nk}, {s.d, shape.d}, {s.dv, shape.dv}};
    const char* names[] = {"q.shape[0] (batch)", "q.shape[1] (heads)", "k.shape[1] (heads)", "q.shape[2] (tokens)",
                           "k.shape[2] (tokens)", "q.shape[3] (features)", "v.shape[3] (features)"};
    for (int i = 0; i < 7; ++i) {
      if (sizes[i].first != sizes[i].second) {
        fail(std::string(names[i]) + ": expected " + std::to_string(sizes[i].second) + " (the plan's), got " +
             std::to_string(sizes[i].first));
      }
    }
    if (!lse.empty() && options.normalizer != Normalizer::softmax) {
      fail("lse: defined for the softmax normalizer only, got " + to_string(options.normalizer));
    }
  }

  template <class Q, class KV>
  AttentionStats run(const HeadsView<const Q>& q, const HeadsView<const KV>& k, const HeadsView<const KV>& v,
                     const HeadsView<float>& out, const TensorView<float, 3>& lse) {
    check(q, k, v, out, lse);
    if (packed()) return engine::run_packed_sequences(shape, options, q, k, v, out, lse);
    if (!flash) return engine::run_linear_attention(shape, options, q, k, v, out);
    std::unique_ptr<engine::RunScratch> scratch = borrow();
    const AttentionStats stats = engine::run_flash_attention(*flash, q, k, v, out, lse, scratch.get());
    give_back(std::move(scratch));
    return stats;
  }

  bool packed() const { return !options.cu_seqlens_q.empty(); }

  AttentionProblem problem;
  AttentionOptions options;
  engine::AttentionShape shape;
  std::optional<engine::FlashPlan> flash;  // all but linear attention
  std::mutex mutex;
  std::vector<std::unique_ptr<engine::RunScratch>> kept;
};

AttentionPlan::AttentionPlan(const AttentionProblem& problem, const AttentionOptions& options)
    : impl_(with_memory_errors([&] { return std::make_unique<Impl>(problem, options); })) {}
AttentionPlan::~AttentionPlan() = default;
AttentionPlan::AttentionPlan(AttentionPlan&&) noexcept = default;
AttentionPlan& AttentionPlan::operator=(AttentionPlan&&) noexcept = default;

AttentionStats AttentionPlan::run(HeadsView<const float> q, HeadsView<const float> k, HeadsView<const float> v,
                                  HeadsView<float> out, TensorView<float, 3> lse) const {
  return with_memory_errors([&] { return impl_->run(q, k, v, out, lse); });
}
AttentionStats AttentionPlan::run(HeadsView<const bf16> q, HeadsView<const bf16> k, HeadsView<const bf16> v,
                                  HeadsView<float> out, TensorView<float, 3> lse) const {
  return with_memory_errors([&] { return impl_->run(q, k, v, out, lse); });
}
AttentionStats AttentionPlan::run(HeadsView<const float> q, HeadsView<const bf16> k, HeadsView<const bf16> v,
                                  HeadsView<float> out, TensorView<float, 3> lse) const {
  return with_memory_errors([&] { return impl_->run(q, k, v, out, lse); });
}

const AttentionProblem& AttentionPlan::problem() const { return impl_->problem; }
const AttentionOptions& AttentionPlan::options() const { return impl_->options; }

AttentionSchedule AttentionPlan::schedule() const {
  if (!impl_->flash) return {.kind = "linear"};
  const engine::FlashPlan& plan = *impl_->flash;
  const engine::AttentionShape& s = impl_->shape;
  // Views of the plan's shape over no memory: the schedule reads their strides alone.
  auto schedule_of = [&](auto q_element, auto kv_element) {
    using Q = decltype(q_element);
    using KV = decltype(kv_element);
    return engine::schedule_for(plan, bhnd<const Q>(nullptr, s.batch, s.q_heads, s.nq, s.d),
                                bhnd<const KV>(nullptr, s.batch, s.kv_heads, s.nk, s.d),
                                bhnd<const KV>(nullptr, s.batch, s.kv_heads, s.nk, s.dv),
                                bhnd<float>(nullptr, s.batch, s.q_heads, s.nq, s.dv), plan.threads);
  };
  const engine::Schedule chosen = impl_->problem.q_type == DType::bf16   ? schedule_of(bf16(), bf16())
                                  : impl_->problem.kv_type == DType::bf16 ? schedule_of(0.0f, bf16())
                                                                           : schedule_of(0.0f, 0.0f);
  AttentionSchedule out{
      .kind = engine::to_string(chosen.kind), .block_rows = plan.block_rows, .block_keys = plan.block_keys};
  switch (chosen.kind) {
    case engine::ScheduleKind::key_splits: out.tasks = chosen.splits, out.keys_per_task = chosen.split_keys; break;
    case engine::ScheduleKind::bands: out.tasks = chosen.bands, out.keys_per_task = chosen.band_blocks; break;
    case engine::ScheduleKind::chunks: out.tasks = chosen.chunks, out.keys_per_task = chosen.chunk_keys; break;
  }
  return out;
}

std::int64_t AttentionPlan::kept_scratch_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::int64_t bytes = 0;
  for (const auto& scratch : impl_->kept) bytes += scratch->bytes();
  return bytes;
}

}  // namespace longattn
