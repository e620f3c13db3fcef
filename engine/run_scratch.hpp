// The scratch one run of a plan works in: a BlockScratch per thread and the schedule's shared
// buffers. A plan keeps these between runs, one set per run in flight, so that a loop of runs
// (decoding) allocates and faults in nothing after its first step.
#pragma once

#include <oneapi/tbb/task_arena.h>

#include <mutex>
#include <vector>

#include <cstdint>
#include <memory>
#include <optional>

#include "engine/aligned_buffer.hpp"
#include "engine/block_scratch.hpp"
#include "engine/flash_plan.hpp"

namespace longattn::engine {

// A BlockScratch per thread slot of the arena a run executes in, made on the slot's first use
// and kept with the run's scratch. Not tbb::enumerable_thread_specific: that allocates its
// construction callback from TBB's own allocator (libtbbmalloc), whose reuse of one thread's
// memory by another ThreadSanitizer cannot see.
class ThreadBlocks {
 public:
  explicit ThreadBlocks(const FlashPlan& plan) : plan_(plan) {}

  // The calling thread's scratch: within one run, each thread of the arena has its own slot.
  BlockScratch& local() {
    const auto slot = static_cast<std::size_t>(tbb::this_task_arena::current_thread_index());
    const std::lock_guard lock(mutex_);  // once per query block or split: not on any hot path
    if (slot >= slots_.size()) slots_.resize(slot + 1);
    if (!slots_[slot]) slots_[slot] = std::make_unique<BlockScratch>(plan_);
    return *slots_[slot];
  }

  // Every slot's scratch made so far (between runs: no thread is using one).
  template <class Visit>
  void for_each(Visit visit) const {
    for (const auto& one : slots_) {
      if (one) visit(static_cast<const BlockScratch&>(*one));
    }
  }
  template <class Visit>
  void for_each(Visit visit) {
    for (const auto& one : slots_) {
      if (one) visit(*one);
    }
  }

 private:
  const FlashPlan& plan_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<BlockScratch>> slots_;
};

struct RunScratch {
  explicit RunScratch(const FlashPlan& plan) : blocks(plan) {
    if (plan.threads > 0) arena.emplace(plan.threads);
  }

  // Runs fn (which uses TBB algorithms) on the plan's threads: an arena of its own, made once
  // with the scratch and kept with it, or TBB's default.
  template <class F>
  auto on_threads(F&& fn) {
    return arena ? arena->execute(fn) : fn();
  }

  ThreadBlocks blocks;
  AlignedBuffer partials;  // split keys: [kv head][split][query head of its group] partial outputs
  AlignedBuffer carry;     // chunks: [head of the round][query head][max, sum][Nq] between chunks
  std::int64_t shared_bytes = 0;  // what this run's schedule used beyond the blocks' scratch
  std::optional<tbb::task_arena> arena;  // with the plan's thread count, when it sets one

  // Scores computed and bytes held, summed over the threads' scratch.
  std::int64_t computed_pairs() const {
    std::int64_t pairs = 0;
    blocks.for_each([&](const BlockScratch& one) { pairs += one.computed_pairs; });
    return pairs;
  }
  std::int64_t bytes() const {
    std::int64_t total = shared_bytes;
    blocks.for_each([&](const BlockScratch& one) { total += one.bytes(); });
    return total;
  }
  // Before a run: counters from zero; the buffers stay for reuse.
  void restart() {
    shared_bytes = 0;
    blocks.for_each([](BlockScratch& one) { one.computed_pairs = 0; });
  }
};

}  // namespace longattn::engine
