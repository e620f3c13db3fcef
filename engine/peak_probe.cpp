// The peak-rate probe: the simd target's FMA chains, timed here, run on every thread.
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>

#include "longattn/machine.hpp"
#include "simd/kernel_table.hpp"

namespace longattn {

Isa resolve_isa(Isa requested) { return simd::kernels_for(requested).isa; }

PeakFlops measure_fp32_peak(Isa isa, int threads, double seconds) {
  const simd::KernelTable& kernels = simd::kernels_for(isa);
  threads = std::max(1, threads);
  using clock = std::chrono::steady_clock;
  auto timed_round = [&](std::int64_t iterations) {
    std::atomic<double> flops{0};
    const auto start = clock::now();
    tbb::task_arena arena(threads);
    arena.execute([&] {
      tbb::parallel_for(0, threads, [&](int) {
        const double f = kernels.fma_peak_probe(iterations);
        double seen = flops.load();
        while (!flops.compare_exchange_weak(seen, seen + f)) {
        }
      }, tbb::static_partitioner());
    });
    const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
    return std::pair{flops.load() / elapsed, elapsed};
  };
  // Calibrate the iteration count to the requested duration, then keep the best of three.
  std::int64_t iterations = 1 << 16;
  double elapsed = timed_round(iterations).second;
  while (elapsed < seconds / 8) {
    iterations *= 4;
    elapsed = timed_round(iterations).second;
  }
  iterations = std::max<std::int64_t>(1, static_cast<std::int64_t>(iterations * seconds / elapsed));
  double best = 0;
  for (int round = 0; round < 3; ++round) best = std::max(best, timed_round(iterations).first);
  return PeakFlops{best * 1e-9, kernels.isa, threads};
}

}  // namespace longattn
