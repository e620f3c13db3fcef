// The prefetch queue the micro-kernels drain: every queued line is issued once, in order,
// whatever the row sizes, and a full or empty queue is harmless (prefetches are hints, so
// only the bookkeeping can be checked).
#include <doctest/doctest.h>

#include <vector>

#include "simd/prefetch.hpp"

using longattn::simd::PrefetchQueue;

TEST_CASE("prefetch queue issues each queued line once, then stays empty") {
  std::vector<char> memory(1 << 16);
  PrefetchQueue queue;
  CHECK(queue.empty());
  queue.add_rows(memory.data(), 3, 100, 256);     // 2 lines a row: 6
  queue.add_rows(memory.data() + 4096, 1, 64, 0);  // 1 line
  queue.add_rows(memory.data(), 0, 64, 64);        // nothing to fetch: ignored
  queue.add_rows(memory.data(), 2, 0, 64);         // nothing to fetch: ignored
  queue.issue(6);
  CHECK_FALSE(queue.empty());
  queue.issue(1);
  CHECK(queue.empty());
  queue.issue(8);  // nothing left: no effect
  CHECK(queue.empty());

  queue.clear();
  for (int set = 0; set < PrefetchQueue::kMaxSets + 3; ++set) queue.add_rows(memory.data() + set * 64, 1, 64, 0);
  queue.issue(PrefetchQueue::kMaxSets - 1);
  CHECK_FALSE(queue.empty());
  queue.issue(1);  // sets past kMaxSets were dropped
  CHECK(queue.empty());
}
