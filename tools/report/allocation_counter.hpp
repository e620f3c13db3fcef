// The bytes a step takes from the heap, counted at byte resolution: peak resident memory cannot
// see a small step whose blocks the allocator serves from pages already resident. The counting
// allocator (tools/counting_malloc.cpp) is linked into the longattn program only; elsewhere,
// and under the sanitizers, which bring allocators of their own, counting is unavailable.
#pragma once

#include <atomic>
#include <cstdint>

namespace longattn::report {

class AllocationCounter {
 public:
  static bool available();
  // Starts counting from here: the peak is the most the live heap grew above this point.
  static void start();
  static std::int64_t peak_bytes();

  // Called by the counting allocator on every allocation and release.
  static void allocated(std::int64_t bytes) {
    const std::int64_t now = live_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::int64_t seen = peak_.load(std::memory_order_relaxed);
    while (now > seen && !peak_.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
    }
  }
  static void released(std::int64_t bytes) { live_.fetch_sub(bytes, std::memory_order_relaxed); }

 private:
  static std::atomic<std::int64_t> live_, peak_;
};

}  // namespace longattn::report

// Defined by the counting allocator where it is linked in.
extern "C" [[gnu::weak]] int longattn_counting_malloc_installed();
