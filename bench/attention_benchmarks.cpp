// Google Benchmark suite: the attention kernel at long n: full, causal (fp32 and bf16 inputs),
// sigmoid (D = 64, 128),
// RoPE and ALiBi, windows, linear attention (up to n = 2^20), a block-sparse layout, decoding
// (one new token against n keys, fp32 and bf16 caches), many short heads (BERT's shapes), and
// the multi-head layer (E = 512, 8 heads) with its projections.
// Counters: GFLOP/s (DESIGN.md §4 FLOPs), % of the measured fp32 peak, scratch bytes.
// A single head, batch 1 (the short heads aside), so n = 65536 stays a few seconds per
// iteration; --benchmark_filter picks sizes, LONGATTN_ISA the path. Output works with Google
// Benchmark's compare.py.
#include <benchmark/benchmark.h>

#include <array>
#include <chrono>
#include <map>
#include <type_traits>
#include <vector>

#include "bench/measure.hpp"
#include "longattn/attention.hpp"
#include "longattn/bf16.hpp"
#include "longattn/machine.hpp"
#include "longattn/multi_head.hpp"

namespace {

double peak_gflops(int threads) {
  static std::map<int, double> cache;
  auto it = cache.find(threads);
  if (it == cache.end()) it = cache.emplace(threads, longattn::measure_fp32_peak(longattn::Isa::automatic, threads).gflops).first;
  return it->second;
}

// The random tensor of `elements` values (bench::random_tensor's) as element type T.
template <class T>
auto random_as(std::int64_t elements, unsigned seed) {
  if constexpr (std::is_same_v<T, longattn::bf16>) {
    return longattn::bench::rounded_to_bf16(longattn::bench::random_tensor(elements, seed));
  } else {
    return longattn::bench::random_tensor(elements, seed);
  }
}

// Attention over `batch` × `heads` heads of n tokens, D = d (state: n, d, threads), on q, k
// and v of element type T (fp32, or bf16: its native products where the CPU has them).
template <class T = float>
void run_attention(benchmark::State& state, longattn::AttentionOptions options, std::int64_t batch,
                   std::int64_t heads) {
  const std::int64_t n = state.range(0), d = state.range(1), size = batch * heads * n * d;
  const int threads = static_cast<int>(state.range(2));
  const auto q = random_as<T>(size, 1), k = random_as<T>(size, 2), v = random_as<T>(size, 3);
  longattn::bench::Tensor out(static_cast<std::size_t>(size));
  options.threads = threads;
  longattn::AttentionStats stats;
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    stats = longattn::attention(longattn::bhnd<const T>(q.data(), batch, heads, n, d),
                                longattn::bhnd<const T>(k.data(), batch, heads, n, d),
                                longattn::bhnd<const T>(v.data(), batch, heads, n, d),
                                longattn::bhnd(out.data(), batch, heads, n, d), options);
    benchmark::DoNotOptimize(out.data());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double gflops = stats.flops * 1e-9 * static_cast<double>(state.iterations()) / seconds;
  state.counters["GFLOPs"] = gflops;
  state.counters["peak_pct"] = 100.0 * gflops / peak_gflops(threads);
  state.counters["scratch_bytes"] = static_cast<double>(stats.scratch_bytes);
  state.SetLabel(longattn::to_string(stats.isa) + (stats.bf16_products ? " bf16 products" : ""));
}

void BM_attention(benchmark::State& state, longattn::AttentionOptions options) { run_attention(state, options, 1, 1); }

// bf16 q, k, v: "% of peak" stays against the fp32 FMA peak.
void BM_attention_bf16(benchmark::State& state, longattn::AttentionOptions options) {
  run_attention<longattn::bf16>(state, options, 1, 1);
}

// BERT-base's shapes: 32 sequences × 12 heads of a few hundred tokens, each head's keys in
// cache (one band per head), against which the long-n figures say little.
void BM_short_heads(benchmark::State& state) { run_attention(state, {}, 32, 12); }

void short_sizes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (std::int64_t n : {128, 256, 512}) b->Args({n, 64, threads});
  b->ArgNames({"n", "d", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (std::int64_t d : {64, 128})
      for (std::int64_t n = 1024; n <= 65536; n *= 2) b->Args({n, d, threads});
  b->ArgNames({"n", "d", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}

longattn::AttentionOptions with_window(longattn::Window w) {
  longattn::AttentionOptions o;
  o.window = w;
  return o;
}

// Truncated attention: cost O(n·w), so n reaches a million tokens.
void window_sizes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (std::int64_t n = 16384; n <= (1 << 20); n *= 4) b->Args({n, 64, threads});
  b->ArgNames({"n", "d", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}

// 10 % of 256 × 256 tiles visible, seeded: against the dense time of the same n.
const std::vector<std::array<std::int64_t, 2>>& tenth_of_tiles(std::int64_t n) {
  static std::map<std::int64_t, std::vector<std::array<std::int64_t, 2>>> layouts;
  auto& tiles = layouts[n];
  if (tiles.empty()) tiles = longattn::bench::random_layout(n, n, 256, 0.1);
  return tiles;
}

void BM_block_sparse(benchmark::State& state) {
  longattn::AttentionOptions options;
  options.block_sparse = {256, 256, tenth_of_tiles(state.range(0))};
  BM_attention(state, options);
}

void sparse_sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {4096, 16384}) b->Args({n, 64, 1});
  b->ArgNames({"n", "d", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}

// Decoding: one query per head against n cached keys (causal, bottom-right aligned), Hq query
// heads on Hkv kv heads, D = 128, q, k and v of element type T (fp32 or bf16); memory-bound,
// so the counter is the rate k and v are read at.
template <class T>
void BM_decode(benchmark::State& state) {
  const std::int64_t n = state.range(0), hq = state.range(1), hkv = state.range(2), d = 128;
  const auto q = random_as<T>(hq * d, 1), k = random_as<T>(hkv * n * d, 2), v = random_as<T>(hkv * n * d, 3);
  longattn::bench::Tensor out(static_cast<std::size_t>(hq * d));
  longattn::AttentionOptions options;
  options.window = longattn::Window::causal();
  options.threads = static_cast<int>(state.range(3));
  longattn::AttentionStats stats;
  for (auto _ : state) {
    stats = longattn::attention(longattn::bhnd<const T>(q.data(), 1, hq, 1, d),
                                longattn::bhnd<const T>(k.data(), 1, hkv, n, d),
                                longattn::bhnd<const T>(v.data(), 1, hkv, n, d), longattn::bhnd(out.data(), 1, hq, 1, d),
                                options);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * 2 * hkv * n * d * static_cast<std::int64_t>(sizeof(T)));
  state.counters["scratch_bytes"] = static_cast<double>(stats.scratch_bytes);
  state.SetLabel(longattn::to_string(stats.isa));
}

void decode_sizes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (std::array<std::int64_t, 2> heads : {std::array<std::int64_t, 2>{8, 8}, {32, 8}, {64, 8}})
      for (std::int64_t n = 4096; n <= 65536; n *= 4) b->Args({n, heads[0], heads[1], threads});
  b->ArgNames({"n", "hq", "hkv", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}

BENCHMARK_CAPTURE(BM_attention, full, with_window(longattn::Window::full()))->Apply(sizes);
BENCHMARK_CAPTURE(BM_attention, causal, with_window(longattn::Window::causal()))->Apply(sizes);
BENCHMARK_CAPTURE(BM_attention_bf16, full, with_window(longattn::Window::full()))->Apply(sizes);
BENCHMARK_CAPTURE(BM_attention_bf16, causal, with_window(longattn::Window::causal()))->Apply(sizes);
BENCHMARK_CAPTURE(BM_attention, window_256_256, with_window({256, 256}))->Apply(window_sizes);

longattn::AttentionOptions with_normalizer(longattn::Normalizer normalizer, longattn::Window w) {
  longattn::AttentionOptions o = with_window(w);
  o.normalizer = normalizer;
  return o;
}
// Linear attention: O(n·D²), so n reaches a million tokens too.
BENCHMARK_CAPTURE(BM_attention, linear, with_normalizer(longattn::Normalizer::linear, longattn::Window::full()))
    ->Apply(window_sizes);
BENCHMARK_CAPTURE(BM_attention, linear_causal, with_normalizer(longattn::Normalizer::linear, longattn::Window::causal()))
    ->Apply(window_sizes);
BENCHMARK_CAPTURE(BM_attention, sigmoid, with_normalizer(longattn::Normalizer::sigmoid, longattn::Window::full()))
    ->Apply(sizes);
BENCHMARK(BM_block_sparse)->Apply(sparse_sizes);
BENCHMARK_TEMPLATE(BM_decode, float)->Apply(decode_sizes);
BENCHMARK_TEMPLATE(BM_decode, longattn::bf16)->Apply(decode_sizes);
BENCHMARK(BM_short_heads)->Apply(short_sizes);

longattn::AttentionOptions with_positions(longattn::RopePairing rope, bool alibi) {
  longattn::AttentionOptions o;
  o.rope.pairing = rope;
  o.alibi = alibi;
  return o;
}
void position_sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {4096, 16384}) b->Args({n, 64, 1});
  b->ArgNames({"n", "d", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}
BENCHMARK_CAPTURE(BM_attention, rope_half, with_positions(longattn::RopePairing::half, false))->Apply(position_sizes);
BENCHMARK_CAPTURE(BM_attention, alibi, with_positions(longattn::RopePairing::none, true))->Apply(position_sizes);

// The multi-head layer, x [1, n, 512] → y, 8 heads of 64: GFLOP/s over attention and
// projection FLOPs together; the share of the projections as a counter.
void BM_multi_head(benchmark::State& state, longattn::AttentionOptions options) {
  const std::int64_t n = state.range(0), E = 512, H = 8, Hkv = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const std::int64_t D = E / H;
  const auto wq = longattn::bench::random_tensor(H * D * E, 11), wkv = longattn::bench::random_tensor(Hkv * D * E, 12),
             wo = longattn::bench::random_tensor(E * H * D, 13), x = longattn::bench::random_tensor(n * E, 14);
  std::vector<float> y(static_cast<std::size_t>(n * E));
  longattn::MultiHeadConfig config;
  config.embed_dim = E, config.heads = H, config.kv_heads = Hkv;
  config.attention = options;
  config.attention.threads = threads;
  longattn::MultiHeadWeights w;
  w.wq = {wq.data(), {H * D, E}, {E, 1}}, w.wk = w.wv = {wkv.data(), {Hkv * D, E}, {E, 1}}, w.wo = {wo.data(), {E, H * D}, {H * D, 1}};
  longattn::MultiHeadSelfAttention layer(config, w);
  longattn::MultiHeadStats stats;
  double seconds = 0, projection_seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    stats = layer.forward({x.data(), {1, n, E}, {n * E, E, 1}}, {y.data(), {1, n, E}, {n * E, E, 1}});
    benchmark::DoNotOptimize(y.data());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    projection_seconds += stats.projection_seconds + stats.output_seconds;
  }
  const double gflops = (stats.attention.flops + stats.projection_flops) * 1e-9 * static_cast<double>(state.iterations()) / seconds;
  state.counters["GFLOPs"] = gflops;
  state.counters["peak_pct"] = 100.0 * gflops / peak_gflops(threads);
  state.counters["projection_pct"] = 100.0 * projection_seconds / seconds;
  state.SetLabel(longattn::to_string(stats.attention.isa));
}
void layer_sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {4096, 16384})
    for (std::int64_t kv_heads : {8, 2}) b->Args({n, kv_heads, 1});
  b->ArgNames({"n", "kv_heads", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
}
BENCHMARK_CAPTURE(BM_multi_head, plain, longattn::AttentionOptions{})->Apply(layer_sizes);
BENCHMARK_CAPTURE(BM_multi_head, causal_rope, [] {
  longattn::AttentionOptions o = with_positions(longattn::RopePairing::half, false);
  o.window = longattn::Window::causal();
  return o;
}())->Apply(layer_sizes);

}  // namespace

BENCHMARK_MAIN();
