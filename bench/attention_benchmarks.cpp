// Google Benchmark suite: the attention kernel at long n, full and causal, D = 64 and 128.
// Counters: GFLOP/s (DESIGN.md §4 FLOPs), % of the measured fp32 peak, scratch bytes.
// Single head, batch 1, so n = 65536 stays a few seconds per iteration; --benchmark_filter
// picks sizes, LONGATTN_ISA the path. Output works with Google Benchmark's compare.py.
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>

#include "bench/measure.hpp"
#include "longattn/attention.hpp"
#include "longattn/machine.hpp"

namespace {

double peak_gflops(int threads) {
  static std::map<int, double> cache;
  auto it = cache.find(threads);
  if (it == cache.end()) it = cache.emplace(threads, longattn::measure_fp32_peak(longattn::Isa::automatic, threads).gflops).first;
  return it->second;
}

void BM_attention(benchmark::State& state, longattn::Window window) {
  const std::int64_t n = state.range(0), d = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const auto q = longattn::bench::random_tensor(n * d, 1), k = longattn::bench::random_tensor(n * d, 2),
             v = longattn::bench::random_tensor(n * d, 3);
  std::vector<float> out(static_cast<std::size_t>(n * d));
  longattn::AttentionOptions options;
  options.window = window;
  options.threads = threads;
  longattn::AttentionStats stats;
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    stats = longattn::attention(longattn::bhnd(q.data(), 1, 1, n, d), longattn::bhnd(k.data(), 1, 1, n, d),
                                longattn::bhnd(v.data(), 1, 1, n, d), longattn::bhnd(out.data(), 1, 1, n, d),
                                options);
    benchmark::DoNotOptimize(out.data());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double gflops = stats.flops * 1e-9 * static_cast<double>(state.iterations()) / seconds;
  state.counters["GFLOPs"] = gflops;
  state.counters["peak_pct"] = 100.0 * gflops / peak_gflops(threads);
  state.counters["scratch_bytes"] = static_cast<double>(stats.scratch_bytes);
  state.SetLabel(longattn::to_string(stats.isa));
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (std::int64_t d : {64, 128})
      for (std::int64_t n = 1024; n <= 65536; n *= 2) b->Args({n, d, threads});
  b->ArgNames({"n", "d", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}

BENCHMARK_CAPTURE(BM_attention, full, longattn::Window::full())->Apply(sizes);
BENCHMARK_CAPTURE(BM_attention, causal, longattn::Window::causal())->Apply(sizes);

}  // namespace

BENCHMARK_MAIN();
