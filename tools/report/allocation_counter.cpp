#include "tools/report/allocation_counter.hpp"

#include <algorithm>

namespace longattn::report {

std::atomic<std::int64_t> AllocationCounter::live_{0}, AllocationCounter::peak_{0};

bool AllocationCounter::available() { return longattn_counting_malloc_installed != nullptr; }

void AllocationCounter::start() {
  live_.store(0, std::memory_order_relaxed);
  peak_.store(0, std::memory_order_relaxed);
}

// Blocks allocated before start() and released after it make live_ dip below zero; the peak
// never reads below zero.
std::int64_t AllocationCounter::peak_bytes() { return std::max<std::int64_t>(0, peak_.load(std::memory_order_relaxed)); }

}  // namespace longattn::report
