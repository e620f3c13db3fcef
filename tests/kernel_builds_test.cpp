// The AVX2 target is built twice, its register blocks looped or unrolled in full, and the
// dispatch picks one by CPU vendor, so every machine runs only one of them through the
// public API. Here both run on any AVX2 machine and must give the same bits: the unrolling
// changes no FMA and no order of adds.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/attention_validation.hpp"
#include "engine/flash_attention.hpp"
#include "longattn/attention.hpp"
#include "simd/targets.hpp"
#include "tests/attention_tester.hpp"

namespace {

struct Inputs {
  std::int64_t heads, n, d;
  std::vector<float> q, k, v;  // [1, heads, n, d] each
};

Inputs random_inputs(std::int64_t heads, std::int64_t n, std::int64_t d) {
  const std::size_t size = static_cast<std::size_t>(heads * n * d);
  Inputs in{heads, n, d, std::vector<float>(size), std::vector<float>(size), std::vector<float>(size)};
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::vector<float>* t : {&in.q, &in.k, &in.v})
    for (float& x : *t) x = normal(rng);
  return in;
}

struct Run {
  std::vector<float> out, lse;
};

Run run_with(const longattn::simd::KernelTable& kernels, const Inputs& in, const longattn::AttentionOptions& options) {
  Run run{std::vector<float>(in.q.size(), std::nanf("")), std::vector<float>(in.heads * in.n, std::nanf(""))};
  const auto qv = longattn::bhnd<const float>(in.q.data(), 1, in.heads, in.n, in.d);
  const auto kv = longattn::bhnd<const float>(in.k.data(), 1, in.heads, in.n, in.d);
  const auto vv = longattn::bhnd<const float>(in.v.data(), 1, in.heads, in.n, in.d);
  const auto ov = longattn::bhnd(run.out.data(), 1, in.heads, in.n, in.d);
  const bool softmax = options.normalizer == longattn::Normalizer::softmax;
  const auto lse = softmax ? longattn::bhn(run.lse.data(), 1, in.heads, in.n) : longattn::TensorView<float, 3>{};
  const auto shape = longattn::engine::validate_attention(qv, kv, vv, ov, lse, options);
  longattn::engine::FlashPlan plan = longattn::engine::make_flash_plan(shape, options);
  plan.kernels = &kernels;
  longattn::engine::run_flash_attention(plan, qv, kv, vv, ov, lse);
  return run;
}

}  // namespace

TEST_CASE("the two AVX2 builds (register blocks looped, unrolled in full) give the same bits") {
  const auto isas = longattn::testing::runnable_isas();
  if (std::ranges::find(isas, longattn::Isa::avx2) == isas.end()) {
    MESSAGE("skipped: AVX2 is not among the paths tested (the CPU has none, or LONGATTN_TEST_ISAS)");
    return;
  }
  const bool two_builds = longattn::simd::avx2_kernels().tile.qk_scores != longattn::simd::avx2_unrolled_kernels().tile.qk_scores;
  REQUIRE(two_builds);
  struct Case {
    const char* name;
    std::int64_t heads, n, d;
    longattn::AttentionOptions options;
  };
  longattn::AttentionOptions causal, window, encoded, sigmoid;
  causal.window = longattn::Window::causal();
  window.window = {40, 7};
  encoded.alibi = true;  // a bias added along each tile's diagonals
  encoded.rope = {longattn::RopePairing::half, 10000.0};
  sigmoid.normalizer = longattn::Normalizer::sigmoid;
  for (const Case& c : {Case{"full, row and depth tails", 2, 333, 80, {}}, Case{"causal, D = 3", 1, 257, 3, causal},
                        Case{"window", 2, 300, 64, window}, Case{"ALiBi and RoPE", 2, 261, 64, encoded},
                        Case{"sigmoid", 1, 200, 24, sigmoid}}) {
    INFO(c.name);
    const Inputs inputs = random_inputs(c.heads, c.n, c.d);
    const Run looped = run_with(longattn::simd::avx2_kernels(), inputs, c.options);
    const Run unrolled = run_with(longattn::simd::avx2_unrolled_kernels(), inputs, c.options);
    // Every row seen through (the outputs start as NaN), then bit for bit the same.
    CHECK(std::all_of(looped.out.begin(), looped.out.end(), [](float x) { return std::isfinite(x); }));
    CHECK(std::memcmp(looped.out.data(), unrolled.out.data(), looped.out.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(looped.lse.data(), unrolled.lse.data(), looped.lse.size() * sizeof(float)) == 0);
  }
}
