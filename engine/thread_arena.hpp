// Where a call's parallel work runs: an arena of the caller's thread count, or TBB's default.
#pragma once

#include <oneapi/tbb/task_arena.h>

namespace longattn::engine {

// Runs fn (which uses TBB algorithms) on `threads` threads; 0 = every thread TBB may use.
template <class F>
auto run_on_threads(int threads, F&& fn) {
  if (threads > 0) {
    tbb::task_arena arena(threads);
    return arena.execute(fn);
  }
  return fn();
}

}  // namespace longattn::engine
