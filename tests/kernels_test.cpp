// Every micro-kernel of every table, one by one, against plain float64 loops (KernelTester):
// rows from 1 past two register blocks, depths of 1 and a few vectors, panels used in part,
// each optional argument on and off.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "tests/kernel_tester.hpp"

using longattn::testing::bf16_targets;
using longattn::testing::kernel_targets;
using longattn::testing::KernelTarget;
using longattn::testing::KernelTester;

namespace {

// Rows 1 … 13: every tail of the 6-row (AVX-512, AVX2) and 4-row (scalar) register blocks,
// and one past two whole blocks.
constexpr int kMaxRows = 13;

// Key offsets and counts in vectors of the target: from a panel's start and middle, ending
// inside a panel, on its edge and past it.
template <class Check>
void for_each_key_range(const KernelTarget& t, Check check) {
  const std::int64_t L = t.table->lanes, P = t.table->panel_width;
  for (std::int64_t first : {std::int64_t{0}, L, P / 2 / L * L, P}) {
    for (std::int64_t keys : {L, P - first % P, P, P + L, 2 * P + 3 * L}) {
      if (keys > 0) check(first, keys);
    }
  }
}

}  // namespace

TEST_CASE("qk_scores: scores and row maxima, every row count, depth, key range and diagonal term") {
  for (const KernelTarget& t : kernel_targets()) {
    CAPTURE(t.name);
    for (int rows = 1; rows <= kMaxRows; ++rows) {
      for (std::int64_t depth : {1, 5, 64}) {
        for_each_key_range(t, [&](std::int64_t first, std::int64_t keys) {
          for (bool diagonals : {false, true}) {
            CAPTURE(rows); CAPTURE(depth); CAPTURE(first); CAPTURE(keys); CAPTURE(diagonals);
            KernelTester().rows(rows).depth(depth).first_key(first).keys(keys).diagonals(diagonals).qk_scores(t);
          }
        });
      }
    }
  }
}

TEST_CASE("qk_probabilities: 2^(shift + score), row sums, row bounds and diagonal term") {
  for (const KernelTarget& t : kernel_targets()) {
    CAPTURE(t.name);
    for (int rows = 1; rows <= kMaxRows; ++rows) {
      for (std::int64_t depth : {1, 7, 64}) {
        for_each_key_range(t, [&](std::int64_t first, std::int64_t keys) {
          for (int terms = 0; terms < 4; ++terms) {
            CAPTURE(rows); CAPTURE(depth); CAPTURE(first); CAPTURE(keys); CAPTURE(terms);
            KernelTester().rows(rows).depth(depth).first_key(first).keys(keys).diagonals(terms & 1).bounds(terms & 2)
                .qk_probabilities(t);
          }
        });
      }
    }
  }
}

TEST_CASE("pv_tile: rescaled rows plus P·V, any key count, value rows packed or farther apart") {
  for (const KernelTarget& t : kernel_targets()) {
    CAPTURE(t.name);
    const std::int64_t L = t.table->lanes;
    for (int rows = 1; rows <= kMaxRows; ++rows) {
      for (std::int64_t keys : {0, 1, 7, 16, 100, 300}) {
        for (std::int64_t dv : {L, 3 * L, 8 * L}) {
          CAPTURE(rows); CAPTURE(keys); CAPTURE(dv);
          KernelTester().rows(rows).keys(keys).columns(dv).row_scale(false).pv_tile(t);
          KernelTester().rows(rows).keys(keys).columns(dv).row_scale(true).streamed(true).pv_tile(t);
        }
      }
    }
  }
}

TEST_CASE("additive_tile: w · tanh(qp + kp) over whole panels, row maxima") {
  for (const KernelTarget& t : kernel_targets()) {
    CAPTURE(t.name);
    for (int rows : {1, 5, 6, 7, 13}) {
      for (std::int64_t da : {1, 8, 33}) {
        for (std::int64_t panels : {1, 3}) {
          CAPTURE(rows); CAPTURE(da); CAPTURE(panels);
          KernelTester().rows(rows).depth(da).keys(panels * t.table->panel_width).additive_tile(t);
        }
      }
    }
  }
}

TEST_CASE("element-wise kernels: exp2, diagonal bias, sigmoid, relu, max, scaled rows, widening") {
  for (const KernelTarget& t : kernel_targets()) {
    CAPTURE(t.name);
    const std::int64_t L = t.table->lanes;
    for (int rows : {1, 3, 8}) {
      for (std::int64_t vectors : {1, 2, 5, 17}) {
        CAPTURE(rows); CAPTURE(vectors);
        const KernelTester tester = KernelTester().rows(rows).columns(vectors * L);
        tester.exp2_rows(t);
        tester.add_diagonal_bias(t);
        tester.sigmoid_and_relu_rows(t);
        tester.max_of(t);
      }
      for (std::int64_t cols : {std::int64_t{1}, L - 1, L, 3 * L + 1, std::int64_t{64}}) {
        if (cols < 1) continue;
        CAPTURE(rows); CAPTURE(cols);
        KernelTester().rows(rows).columns(cols).scale_rows(t);
        KernelTester().rows(rows).columns(cols).streamed(true).scale_rows(t);
        KernelTester().columns(cols * rows).widen_bf16(t);
      }
    }
  }
}

TEST_CASE("pack_key_panel: features transposed into [d][panel_width], scaled, zero past the keys") {
  for (const KernelTarget& t : kernel_targets()) {
    CAPTURE(t.name);
    for (std::int64_t d : {1, 3, 16, 64}) {
      for (std::int64_t count : {0, 1, t.table->panel_width - 1, t.table->panel_width}) {
        if (count < 0) continue;
        CAPTURE(d); CAPTURE(count);
        KernelTester().depth(d).keys(count).pack_key_panel(t);
        KernelTester().depth(d).keys(count).streamed(true).pack_key_panel(t);
      }
    }
  }
}

TEST_CASE("elu + 1, linear attention's features: e^x below zero, x + 1 above, at any length; NaN and inf kept") {
  std::mt19937 rng(41);
  std::uniform_real_distribution<float> uniform(-30.0f, 30.0f);
  for (const KernelTarget& t : kernel_targets()) {
    CAPTURE(t.name);
    for (std::int64_t n : {1, 7, 16, 64, 67}) {
      std::vector<float> x(n), y(n, -1.0f);
      for (float& v : x) v = uniform(rng);
      t.table->elementwise.elu_plus_one(x.data(), y.data(), n);
      for (std::int64_t i = 0; i < n; ++i) {
        if (x[i] > 0) {
          CHECK(y[i] == x[i] + 1.0f);
          continue;
        }
        const double expected = std::exp(double(x[i])), ulp = std::ldexp(1.0, std::ilogb(expected) - 23);
        CHECK(std::abs(y[i] - expected) <= (4 + 2 * std::abs(x[i])) * ulp);  // x · log2 e rounds: |x| ulp more
      }
    }
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<float> special{std::numeric_limits<float>::quiet_NaN(), inf, -inf, 0.0f, -0.0f, -200.0f};
    special.resize(std::max<std::size_t>(special.size(), t.table->lanes * 2 + 1), 1.0f);  // vector loop and tail
    std::vector<float> out(special.size());
    t.table->elementwise.elu_plus_one(special.data(), out.data(), static_cast<std::int64_t>(special.size()));
    CHECK(std::isnan(out[0]));
    CHECK(out[1] == inf);
    CHECK(out[2] == 0.0f);
    CHECK(out[3] == 1.0f);
    CHECK(out[4] == 1.0f);
    CHECK(out[5] == 0.0f);
  }
}

TEST_CASE("column sums and row dot products, linear attention's normalizers: any column count, added to") {
  std::mt19937 rng(43);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const KernelTarget& t : kernel_targets()) {
    CAPTURE(t.name);
    const std::int64_t L = t.table->lanes;
    for (std::int64_t rows : {0, 1, 5, 64}) {
      for (std::int64_t cols : {std::int64_t{1}, L - 1, L, 4 * L, 5 * L + 3}) {
        if (cols < 1) continue;
        CAPTURE(rows); CAPTURE(cols);
        const std::int64_t ldx = cols + 2;  // rows apart, the gap never read
        std::vector<float> x(std::max<std::int64_t>(rows, 1) * ldx, std::numeric_limits<float>::quiet_NaN());
        std::vector<float> w(cols), sums(cols), dots(rows);
        for (std::int64_t r = 0; r < rows; ++r) {
          for (std::int64_t c = 0; c < cols; ++c) x[r * ldx + c] = uniform(rng);
        }
        for (float& v : w) v = uniform(rng);
        for (float& v : sums) v = uniform(rng);
        for (float& v : dots) v = uniform(rng);
        std::vector<double> expected_sums(sums.begin(), sums.end()), expected_dots(dots.begin(), dots.end());
        for (std::int64_t r = 0; r < rows; ++r) {
          for (std::int64_t c = 0; c < cols; ++c) {
            expected_sums[c] += x[r * ldx + c];
            expected_dots[r] += double(x[r * ldx + c]) * w[c];
          }
        }
        t.table->elementwise.add_columns(x.data(), rows, ldx, cols, sums.data());
        t.table->elementwise.add_row_dots(x.data(), rows, ldx, cols, w.data(), dots.data());
        for (std::int64_t c = 0; c < cols; ++c) CHECK(std::abs(sums[c] - expected_sums[c]) <= 1e-5 * (rows + 1));
        for (std::int64_t r = 0; r < rows; ++r) CHECK(std::abs(dots[r] - expected_dots[r]) <= 1e-5 * (cols + 1));
      }
    }
  }
}

TEST_CASE("the bf16 products: scores, probabilities stored in bf16, P·V on pairs, packing") {
  for (const KernelTarget& t : bf16_targets()) {
    CAPTURE(t.name);
    for (int rows = 1; rows <= kMaxRows; ++rows) {
      for (std::int64_t pairs : {1, 3, 32}) {
        for_each_key_range(t, [&](std::int64_t first, std::int64_t keys) {
          CAPTURE(rows); CAPTURE(pairs); CAPTURE(first); CAPTURE(keys);
          KernelTester().rows(rows).depth(pairs).first_key(first).keys(keys).bf16_qk_scores(t);
          KernelTester().rows(rows).depth(pairs).first_key(first).keys(keys).bf16_qk_probabilities(t);
        });
      }
      for (std::int64_t keys : {1, 2, 7, 64, 257}) {
        for (std::int64_t dv : {16, 64}) {
          CAPTURE(rows); CAPTURE(keys); CAPTURE(dv);
          KernelTester().rows(rows).keys(keys).columns(dv).row_scale(rows % 2 == 0).bf16_pv_tile(t);
        }
      }
    }
    for (std::int64_t pairs : {1, 5, 32}) {
      for (std::int64_t count : {0, 1, 33, 64}) {
        for (std::int64_t dv : {1, 16, 40}) {
          CAPTURE(pairs); CAPTURE(count); CAPTURE(dv);
          KernelTester().depth(pairs).keys(count).columns(dv).streamed(count % 2 == 1).bf16_packing(t);
        }
      }
    }
  }
}
