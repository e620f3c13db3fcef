// The scratch one run of a plan works in: a BlockScratch per thread and the schedule's shared
// buffers. A plan keeps these between runs, one set per run in flight, so that a loop of runs
// (decoding) allocates and faults in nothing after its first step.
#pragma once

#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/task_arena.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "engine/aligned_buffer.hpp"
#include "engine/block_scratch.hpp"
#include "engine/flash_plan.hpp"

namespace longattn::engine {

struct RunScratch {
  explicit RunScratch(const FlashPlan& plan) : blocks([&plan] { return BlockScratch(plan); }) {
    if (plan.threads > 0) arena.emplace(plan.threads);
  }

  // Runs fn (which uses TBB algorithms) on the plan's threads: an arena of its own, made once
  // with the scratch and kept with it, or TBB's default.
  template <class F>
  auto on_threads(F&& fn) {
    return arena ? arena->execute(fn) : fn();
  }

  // On the C++ allocator rather than TBB's default (libtbbmalloc, whose reuse of one thread's
  // memory by another ThreadSanitizer cannot see): made once per thread and run, so the
  // allocator's speed does not matter.
  tbb::enumerable_thread_specific<BlockScratch, std::allocator<BlockScratch>> blocks;
  AlignedBuffer partials;  // split keys: [kv head][split][query head of its group] partial outputs
  AlignedBuffer carry;     // chunks: [head of the round][query head][max, sum][Nq] between chunks
  std::int64_t shared_bytes = 0;  // what this run's schedule used beyond the blocks' scratch
  std::optional<tbb::task_arena> arena;  // with the plan's thread count, when it sets one

  // Scores computed and bytes held, summed over the threads' scratch.
  std::int64_t computed_pairs() const {
    std::int64_t pairs = 0;
    for (const BlockScratch& one : blocks) pairs += one.computed_pairs;
    return pairs;
  }
  std::int64_t bytes() const {
    std::int64_t total = shared_bytes;
    for (const BlockScratch& one : blocks) total += one.bytes();
    return total;
  }
  // Before a run: counters from zero; the buffers stay for reuse.
  void restart() {
    shared_bytes = 0;
    for (BlockScratch& one : blocks) one.computed_pairs = 0;
  }
};

}  // namespace longattn::engine
