// The vectorized exp2 of every ISA path, alone and inside the QKᵀ kernel: at most 2 ulp over
// the range the softmax uses.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "simd/denormals.hpp"
#include "simd/kernel_table.hpp"
#include "tests/attention_tester.hpp"

namespace {

double ulp_error(float actual, double expected) {
  const double ulp = std::ldexp(1.0, std::ilogb(expected) - 23);
  return std::abs(actual - expected) / ulp;
}

}  // namespace

TEST_CASE("exp2 is within 2 ulp on [-126, 0] and exact at the ends") {
  std::vector<float> x;
  for (float t = -126.0f; t <= 0.0f; t += 0.000977f) x.push_back(t);
  x.push_back(0.0f);
  for (longattn::Isa isa : longattn::testing::runnable_isas()) {
    CAPTURE(longattn::to_string(isa));
    const auto& kernels = longattn::simd::kernels_for(isa);
    std::vector<float> y(x.size());
    kernels.elementwise.exp2(x.data(), y.data(), static_cast<std::int64_t>(x.size()));
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, ulp_error(y[i], std::exp2(double(x[i]))));
    MESSAGE(longattn::to_string(isa) << ": max exp2 error " << worst << " ulp");
    CHECK(worst <= 2.0);

    // A masked score (-inf) and far underflow must give exact zeros, never NaN.
    // A row whose keys are all masked relies on this: its sum must be exactly 0.
    std::vector<float> ends_in(64, -std::numeric_limits<float>::infinity()), ends_out(64);
    ends_in[1] = -1000.0f;
    ends_in[2] = -160.0f;
    ends_in[3] = 0.0f;
    kernels.elementwise.exp2(ends_in.data(), ends_out.data(), 64);
    CHECK(ends_out[0] == 0.0f);
    CHECK(ends_out[1] == 0.0f);
    CHECK(ends_out[2] == 0.0f);
    CHECK(ends_out[3] == 1.0f);
    for (int i = 4; i < 64; ++i) CHECK(ends_out[i] == 0.0f);
  }
}

// The QKᵀ kernel exponentiating its scores (row_sum given, the engine's lazy tiles): no lane
// mask there, so its bounds rest on flushed denormals as the engine runs it. With d = 1 and
// q = 1 a key panel [1][panel_width] is the scores themselves, each computed exactly.
TEST_CASE("the int8 scores' coarse exp2: within 8.6e-5 relative on [-126, 0], exact at 0, zeros below 2^-126") {
  const longattn::simd::DenormalsFlushed flushed;
  std::vector<float> x;
  for (float t = -126.0f; t <= 0.0f; t += 0.000977f) x.push_back(t);
  x.resize(x.size() / 16 * 16);
  x.insert(x.end(), {0.0f, -0.5f, -1.0f, -127.5f, -150.0f, -1000.0f, -126.0f, -3.25f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,
                     0.0f, 0.0f, 0.0f});
  for (longattn::Isa isa : longattn::testing::runnable_isas()) {
    CAPTURE(longattn::to_string(isa));
    const auto& kernels = longattn::simd::kernels_for(isa);
    std::vector<float> y(x.size());
    kernels.elementwise.exp2_coarse(x.data(), y.data(), static_cast<std::int64_t>(x.size()));
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double exact = std::exp2(double(x[i]));
      if (exact >= 0x1p-126) worst = std::max(worst, std::abs(y[i] - exact) / exact);
      if (exact < 0x1p-126) CHECK(y[i] == 0.0f);
    }
    MESSAGE(longattn::to_string(isa) << ": max coarse exp2 error " << worst);
    CHECK(worst <= 8.6e-5);
    CHECK(y[x.size() - 16] == 1.0f);
  }
}

TEST_CASE("QK^T with exp2 in the kernel: within 2 ulp, and zeros below 2^-126 with denormals flushed") {
  const longattn::simd::DenormalsFlushed flushed;
  const float one = 1.0f, no_offset = 0.0f;
  for (longattn::Isa isa : longattn::testing::runnable_isas()) {
    CAPTURE(longattn::to_string(isa));
    const auto& kernels = longattn::simd::kernels_for(isa);
    longattn::simd::PrefetchQueue prefetch;
    auto exp2_of_scores = [&](const std::vector<float>& scores, float& sum, const std::int32_t* bounds = nullptr) {
      std::vector<float> p(scores.size());
      const auto keys = static_cast<std::int64_t>(scores.size());
      kernels.tile.qk_probabilities(&one, 1, 1, scores.data(), 0, keys, p.data(), keys, &no_offset, {nullptr, bounds},
                                    &sum, prefetch);
      return p;
    };

    std::vector<float> x;
    for (float t = -126.0f; t <= 0.0f; t += 0.000977f) x.push_back(t);
    x.resize(x.size() / kernels.panel_width * kernels.panel_width);
    float sum = 0;
    const std::vector<float> p = exp2_of_scores(x, sum);
    double worst = 0, expected_sum = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      worst = std::max(worst, ulp_error(p[i], std::exp2(double(x[i]))));
      expected_sum += std::exp2(double(x[i]));
    }
    MESSAGE(longattn::to_string(isa) << ": max exp2 error (in QK^T) " << worst << " ulp");
    CHECK(worst <= 2.0);
    CHECK(std::abs(sum - expected_sum) <= 1e-5 * expected_sum);

    std::vector<float> far((8 + kernels.panel_width - 1) / kernels.panel_width * kernels.panel_width, -1000.0f);
    far[1] = -160.0f, far[2] = -127.5f, far[3] = -126.5f, far[4] = -3e38f, far[5] = 0.0f;
    float far_sum = 0;
    const std::vector<float> far_p = exp2_of_scores(far, far_sum);
    for (std::size_t i = 0; i < far.size(); ++i) {
      CAPTURE(i);
      CHECK(far_p[i] == (i == 5 ? 1.0f : 0.0f));
    }
    CHECK(far_sum == 1.0f);

    // Scores past 2^128 (a lazy tile's against a stale row max): +inf, so the engine's check
    // of the row sums sends the tile back; wrapped-around exponent bits gave 0 or negatives.
    std::vector<float> high(far.size(), 0.0f);
    high[1] = 128.0f, high[2] = 130.0f, high[3] = 200.0f, high[4] = 3e38f;
    float high_sum = 0;
    const std::vector<float> high_p = exp2_of_scores(high, high_sum);
    for (std::size_t i = 1; i <= 4; ++i) {
      CAPTURE(i);
      CHECK(high_p[i] == std::numeric_limits<float>::infinity());
    }
    CHECK(high_sum == std::numeric_limits<float>::infinity());

    // With row bounds (a window's edge), keys outside them come out as 0 whatever they score,
    // across vector and panel boundaries.
    std::vector<float> bounded(3 * kernels.panel_width, -1.0f);
    bounded[1] = 500.0f;                    // outside: would overflow
    bounded[bounded.size() - 2] = 500.0f;  // outside
    const auto last = static_cast<std::int32_t>(bounded.size()) - 5;
    for (const std::array<std::int32_t, 2> row : {std::array<std::int32_t, 2>{3, last}, {0, 0}, {2, 3}}) {
      CAPTURE(row[0]);
      CAPTURE(row[1]);
      float bounded_sum = -1;
      const std::vector<float> bounded_p = exp2_of_scores(bounded, bounded_sum, row.data());
      for (std::int32_t c = 0; c < static_cast<std::int32_t>(bounded.size()); ++c) {
        CAPTURE(c);
        CHECK(bounded_p[c] == (c >= row[0] && c < row[1] ? 0.5f : 0.0f));
      }
      CHECK(bounded_sum == 0.5f * static_cast<float>(row[1] - row[0]));
    }
  }
}
