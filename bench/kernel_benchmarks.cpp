// Google Benchmark suite of the micro-kernels alone, on one Br × Bc tile held in cache:
// where the attention time goes (QKᵀ, exp2, P·V) and how close each kernel runs to peak.
// Arguments: rows (Br), keys (Bc), D; every ISA path the CPU runs.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <new>
#include <vector>

#include "bench/cache_line_allocator.hpp"
#include "longattn/bf16.hpp"
#include "longattn/machine.hpp"
#include "simd/denormals.hpp"
#include "simd/kernel_table.hpp"

namespace {

using longattn::Isa;

// Cache-line aligned like the engine's scratch.
using Floats = longattn::bench::Tensor;

struct Tile {
  std::int64_t rows, keys, d;
  Floats q, key_panels, scores, values, acc, row_max, row_scale, row_sum;
  longattn::simd::PrefetchQueue prefetch;  // empty: the tile's operands are all in cache
  Tile(std::int64_t r, std::int64_t k, std::int64_t dim)
      : rows(r), keys(k), d(dim), q(r * dim, 0.01f), key_panels(k * dim, 0.02f), scores(r * k, -1.0f),
        values(k * dim, 0.1f), acc(r * dim, 0.0f), row_max(r, 0.0f), row_scale(r, 1.0f), row_sum(r) {}
};

double peak(Isa isa) {
  static std::vector<std::pair<Isa, double>> cache;
  for (auto& [i, g] : cache) if (i == isa) return g;
  cache.emplace_back(isa, longattn::measure_fp32_peak(isa, 1).gflops);
  return cache.back().second;
}

void report(benchmark::State& state, Isa isa, double flops_per_iteration) {
  state.counters["GFLOPs"] = benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_GFLOPs"] = peak(isa);
  state.SetLabel(longattn::to_string(isa));
}

void BM_qk_tile(benchmark::State& state, Isa isa) {
  const auto& k = longattn::simd::kernels_for(isa);
  Tile t(state.range(0), state.range(1), state.range(2));
  for (auto _ : state) {
    k.tile.qk_scores(t.q.data(), t.rows, t.d, t.key_panels.data(), 0, t.keys, t.scores.data(), t.keys, {},
                     t.row_max.data(), t.prefetch);
    benchmark::DoNotOptimize(t.scores.data());
  }
  report(state, isa, 2.0 * t.rows * t.keys * t.d);
}

void BM_pv_tile(benchmark::State& state, Isa isa) {
  const auto& k = longattn::simd::kernels_for(isa);
  Tile t(state.range(0), state.range(1), state.range(2));
  for (auto _ : state) {
    k.tile.pv_tile(t.scores.data(), t.rows, t.keys, t.keys, t.values.data(), t.d, t.d, t.acc.data(), t.row_scale.data(),
              t.prefetch);
    benchmark::DoNotOptimize(t.acc.data());
  }
  report(state, isa, 2.0 * t.rows * t.keys * t.d);
}

void BM_exp2_rows(benchmark::State& state, Isa isa) {
  const auto& k = longattn::simd::kernels_for(isa);
  Tile t(state.range(0), state.range(1), state.range(2));
  // Run in place, x -> 2^(x - 2) converges to a fixed point near 0.31: every pass sees
  // ordinary finite scores.
  std::fill(t.row_max.begin(), t.row_max.end(), 2.0f);
  for (auto _ : state) {
    k.elementwise.exp2_rows(t.scores.data(), t.rows, t.keys, t.keys, t.row_max.data(), t.row_sum.data());
    benchmark::DoNotOptimize(t.scores.data());
  }
  state.counters["ns_per_score"] = benchmark::Counter(double(t.rows * t.keys), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetLabel(longattn::to_string(isa));
}

// QKᵀ, exp2 and P·V in turn on the same tile, hot in cache: what the three kernels reach
// together before the engine adds its work (fresh K/V per tile, row bookkeeping). Scores
// land near 0 (tiny q, k) so every probability is an ordinary number.
// range(3) > 1: keys and values of that many tiles in turn, as the engine streams a head's.
// range(4) = 1: the engine's usual tile, its scores against a known row max exponentiated in
// the QKᵀ kernel; 0: a tile max, then the exp2 pass (a row's first tile).
void BM_tile_pipeline(benchmark::State& state, Isa isa) {
  const auto& k = longattn::simd::kernels_for(isa);
  const longattn::simd::DenormalsFlushed flushed;
  Tile t(state.range(0), state.range(1), state.range(2));
  std::fill(t.row_max.begin(), t.row_max.end(), 0.0f);
  Floats shift(t.rows, 0.0f);
  const std::int64_t copies = state.range(3);
  const bool exp2_in_qk = state.range(4) == 1;
  Floats keys(copies * t.keys * t.d, 0.02f), values(copies * t.keys * t.d, 0.1f);
  std::int64_t c = 0;
  for (auto _ : state) {
    const float* key_panels = keys.data() + c * t.keys * t.d;
    const float* value_rows = values.data() + c * t.keys * t.d;
    c = (c + 1) % copies;
    if (exp2_in_qk) {
      k.tile.qk_probabilities(t.q.data(), t.rows, t.d, key_panels, 0, t.keys, t.scores.data(), t.keys, shift.data(),
                              {}, t.row_sum.data(), t.prefetch);
    } else {
      k.tile.qk_scores(t.q.data(), t.rows, t.d, key_panels, 0, t.keys, t.scores.data(), t.keys, {}, t.row_max.data(),
                       t.prefetch);
      k.elementwise.exp2_rows(t.scores.data(), t.rows, t.keys, t.keys, shift.data(), t.row_sum.data());
    }
    k.tile.pv_tile(t.scores.data(), t.rows, t.keys, t.keys, value_rows, t.d, t.d, t.acc.data(),
              exp2_in_qk ? nullptr : t.row_scale.data(), t.prefetch);
    benchmark::DoNotOptimize(t.acc.data());
  }
  report(state, isa, 4.0 * t.rows * t.keys * t.d);
}

// The bf16 products (AVX512-BF16) on the same tiles: q, key panels and value rows as bf16
// pairs (their values do not change the instructions' time).
struct Bf16Tile {
  std::vector<longattn::bf16> q, key_panels, values;
  Bf16Tile(const Tile& t, std::int64_t copies)
      : q(t.rows * t.d, longattn::bf16(0.01f)), key_panels(copies * t.keys * t.d, longattn::bf16(0.02f)),
        values(copies * t.keys * t.d, longattn::bf16(0.1f)) {}
};

void BM_qk_tile_bf16(benchmark::State& state, Isa isa) {
  const auto& k = *longattn::simd::kernels_for(isa).bf16_dot;
  Tile t(state.range(0), state.range(1), state.range(2));
  const Bf16Tile b(t, 1);
  for (auto _ : state) {
    k.qk_scores(b.q.data(), t.rows, t.d / 2, b.key_panels.data(), 0, t.keys, t.scores.data(), t.keys, 0.125f, {},
                t.row_max.data(), t.prefetch);
    benchmark::DoNotOptimize(t.scores.data());
  }
  report(state, isa, 2.0 * t.rows * t.keys * t.d);
}

// BM_tile_pipeline's engine tile (exp2 in the QKᵀ kernel) on bf16 products: the QKᵀ kernel
// stores the probabilities in bf16 for P·V.
void BM_tile_pipeline_bf16(benchmark::State& state, Isa isa) {
  const auto& k = *longattn::simd::kernels_for(isa).bf16_dot;
  const longattn::simd::DenormalsFlushed flushed;
  Tile t(state.range(0), state.range(1), state.range(2));
  const std::int64_t copies = state.range(3);
  const Bf16Tile b(t, copies);
  Floats shift(t.rows, 0.0f);
  std::int64_t c = 0;
  for (auto _ : state) {
    const longattn::bf16* key_panels = b.key_panels.data() + c * t.keys * t.d;
    const longattn::bf16* value_pairs = b.values.data() + c * t.keys * t.d;
    c = (c + 1) % copies;
    k.qk_probabilities(b.q.data(), t.rows, t.d / 2, key_panels, 0, t.keys, t.scores.data(), t.keys, 0.125f,
                       shift.data(), {}, t.row_sum.data(), t.prefetch);
    k.pv_tile(t.scores.data(), t.rows, t.keys, t.keys, value_pairs, t.d, t.acc.data(), nullptr, true, t.prefetch);
    benchmark::DoNotOptimize(t.acc.data());
  }
  report(state, isa, 4.0 * t.rows * t.keys * t.d);
}

void tiles(benchmark::internal::Benchmark* b) {
  for (std::int64_t d : {64, 128}) b->Args({96, 256, d});
  b->ArgNames({"rows", "keys", "d"});
}

int register_all() {
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::scalar}) {
    if (!longattn::simd::cpu_supports(isa)) continue;
    const std::string name = longattn::to_string(isa);
    benchmark::RegisterBenchmark(("qk_tile/" + name).c_str(), BM_qk_tile, isa)->Apply(tiles);
    benchmark::RegisterBenchmark(("pv_tile/" + name).c_str(), BM_pv_tile, isa)->Apply(tiles);
    benchmark::RegisterBenchmark(("exp2_rows/" + name).c_str(), BM_exp2_rows, isa)->Apply(tiles);
    benchmark::RegisterBenchmark(("tile_pipeline/" + name).c_str(), BM_tile_pipeline, isa)->Apply([](auto* b) {
      for (std::int64_t d : {64, 128})
        for (std::int64_t copies : {1, 256})
          for (std::int64_t exp2_in_qk : {0, 1}) b->Args({96, 256, d, copies, exp2_in_qk});
      b->ArgNames({"rows", "keys", "d", "kv_tiles", "exp2_in_qk"});
    });
    if (longattn::simd::kernels_for(isa).bf16_dot != nullptr) {
      benchmark::RegisterBenchmark(("qk_tile_bf16/" + name).c_str(), BM_qk_tile_bf16, isa)->Apply(tiles);
      benchmark::RegisterBenchmark(("tile_pipeline_bf16/" + name).c_str(), BM_tile_pipeline_bf16, isa)
          ->Apply([](auto* b) {
            for (std::int64_t d : {64, 128})
              for (std::int64_t copies : {1, 256}) b->Args({96, 256, d, copies});
            b->ArgNames({"rows", "keys", "d", "kv_tiles"});
          });
    }
  }
  return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
