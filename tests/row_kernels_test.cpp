// The decoding kernels (qk_rows, pv_rows) of every ISA path against plain fp64 loops, over
// the shapes of for_each_shape, with rows at any alignment and stride; their bf16 forms
// against the fp32 ones on the widened rows; their int8 forms against fp64 loops over the
// values the rows and their scales stand for.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "longattn/bf16.hpp"

#include "simd/kernel_table.hpp"
#include "tests/kernel_tester.hpp"

namespace {

std::vector<float> random_floats(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = uniform(rng);
  return x;
}

// check(kernels, rows, width, count) for every kernel table and every shape both tests run:
// row counts on both sides of the key-block threshold (8) and of the row groups, widths (the
// depth of QKᵀ, the value rows of P·V) with and without a tail and in every column block
// (256 = AVX-512's widest, 200 = blocks of 8, 4 and a tail), key counts that leave key
// blocks and the keys summed together unfinished, and one past the weights P·V scales at a
// time (256).
template <class Check>
void for_each_shape(Check check) {
  for (const longattn::testing::KernelTarget& target : longattn::testing::kernel_targets()) {
    const longattn::simd::KernelTable* kernels = target.table;
    CAPTURE(target.name);
    for (std::int64_t rows : {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16}) {
      for (std::int64_t width : {1, 3, 8, 37, 64, 128, 200, 256}) {
        for (std::int64_t count : {1, 2, 3, 5, 17, 33, 300}) {
          CAPTURE(rows);
          CAPTURE(width);
          CAPTURE(count);
          check(*kernels, rows, width, count);
        }
      }
    }
  }
}

// x rounded to bf16, and the fp32 values those stand for.
std::pair<std::vector<longattn::bf16>, std::vector<float>> bf16_and_widened(const std::vector<float>& x) {
  std::vector<longattn::bf16> half(x.size());
  std::vector<float> wide(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    half[i] = longattn::bf16(x[i]);
    wide[i] = static_cast<float>(half[i]);
  }
  return {half, wide};
}

// Random int8 rows of `width` at stride ld (one element before the first), and a positive
// scale per row; values[i] = what element i stands for (its row's scale times it).
struct Int8Rows {
  std::vector<std::int8_t> rows;
  std::vector<float> scales, values;
};
Int8Rows random_int8_rows(std::int64_t count, std::int64_t ld, std::mt19937& rng) {
  std::uniform_int_distribution<int> element(-127, 127);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  Int8Rows x{std::vector<std::int8_t>(count * ld + 1), std::vector<float>(count), std::vector<float>(count * ld + 1)};
  for (std::int64_t j = 0; j < count; ++j) x.scales[j] = scale(rng);
  for (std::size_t i = 0; i < x.rows.size(); ++i) {
    x.rows[i] = static_cast<std::int8_t>(element(rng));
    const std::int64_t row = std::min<std::int64_t>(count - 1, std::max<std::int64_t>(0, (static_cast<std::int64_t>(i) - 1) / ld));
    x.values[i] = x.scales[row] * x.rows[i];
  }
  return x;
}

}  // namespace

TEST_CASE("qk_rows_int8: every row against every int8 key times its scale, at any row count, depth and stride") {
  std::mt19937 rng(7);
  for_each_shape([&](const longattn::simd::KernelTable& kernels, std::int64_t rows, std::int64_t d,
                     std::int64_t count) {
    const std::int64_t ldq = d + 3, ldk = d + 5, lds = count + 2;
    const std::vector<float> q = random_floats(rows * ldq + 1, rng);
    const Int8Rows k = random_int8_rows(count, ldk, rng);
    const float scale = 0.375f;
    std::vector<float> s(rows * lds, -7.0f);
    kernels.rows.qk_rows_int8(q.data() + 1, rows, ldq, d, k.rows.data() + 1, ldk, k.scales.data(), count, scale,
                              s.data(), lds);
    double worst = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < count; ++c) {
        double dot = 0, magnitude = 0;
        for (std::int64_t f = 0; f < d; ++f) {
          dot += double(q[1 + r * ldq + f]) * k.values[1 + c * ldk + f];
          magnitude += std::abs(double(q[1 + r * ldq + f]) * k.values[1 + c * ldk + f]);
        }
        worst = std::max(worst, std::abs(s[r * lds + c] - scale * dot) / (scale * magnitude));
      }
      for (std::int64_t c = count; c < lds; ++c) CHECK(s[r * lds + c] == -7.0f);
    }
    CHECK(worst < 1e-6);
  });
}

TEST_CASE("pv_rows_int8: every int8 value row times its scale added, at any row count and width") {
  std::mt19937 rng(9);
  for_each_shape([&](const longattn::simd::KernelTable& kernels, std::int64_t rows, std::int64_t dv,
                     std::int64_t count) {
    const std::int64_t ldp = count + 3, ldv = dv + 5, ldo = dv + 2;
    const std::vector<float> p = random_floats(rows * ldp, rng), start = random_floats(rows * ldo, rng);
    const std::vector<float> row_scale = random_floats(rows, rng);
    const Int8Rows v = random_int8_rows(count, ldv, rng);
    std::vector<float> o = start;
    kernels.rows.pv_rows_int8(p.data(), rows, ldp, count, v.rows.data() + 1, ldv, v.scales.data(), dv, o.data(), ldo,
                              row_scale.data());
    double worst = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < ldo; ++c) {
        if (c >= dv) {
          CHECK(o[r * ldo + c] == start[r * ldo + c]);
          continue;
        }
        double sum = double(start[r * ldo + c]) * row_scale[r], magnitude = std::abs(sum);
        for (std::int64_t j = 0; j < count; ++j) {
          sum += double(p[r * ldp + j]) * v.values[1 + j * ldv + c];
          magnitude += std::abs(double(p[r * ldp + j]) * v.values[1 + j * ldv + c]);
        }
        worst = std::max(worst, std::abs(o[r * ldo + c] - sum) / magnitude);
      }
    }
    CHECK(worst < 1e-6);
  });
}

TEST_CASE("qk_rows: every row against every key, in place, at any row count, depth and stride") {
  std::mt19937 rng(3);
  for_each_shape([&](const longattn::simd::KernelTable& kernels, std::int64_t rows, std::int64_t d,
                     std::int64_t count) {
    const std::int64_t ldq = d + 3, ldk = d + 5, lds = count + 2;  // rows apart, unaligned
    const std::vector<float> q = random_floats(rows * ldq + 1, rng), k = random_floats(count * ldk + 1, rng);
    const float scale = 0.375f;
    // The scores against the keys `keys` stands for (k, or its bf16 rounding), checked there.
    auto check_scores = [&](const auto& keys, const std::vector<float>& key_values) {
      std::vector<float> s(rows * lds, -7.0f);
      if constexpr (std::is_same_v<std::decay_t<decltype(keys[0])>, float>) {
        kernels.rows.qk_rows(q.data() + 1, rows, ldq, d, keys.data() + 1, ldk, count, scale, s.data(), lds);
      } else {
        kernels.rows.qk_rows_bf16(q.data() + 1, rows, ldq, d, keys.data() + 1, ldk, count, scale, s.data(), lds);
      }
      double worst = 0;
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t c = 0; c < count; ++c) {
          double dot = 0, magnitude = 0;
          for (std::int64_t f = 0; f < d; ++f) {
            dot += double(q[1 + r * ldq + f]) * key_values[1 + c * ldk + f];
            magnitude += std::abs(double(q[1 + r * ldq + f]) * key_values[1 + c * ldk + f]);
          }
          worst = std::max(worst, std::abs(s[r * lds + c] - scale * dot) / (scale * magnitude));
        }
        for (std::int64_t c = count; c < lds; ++c) CHECK(s[r * lds + c] == -7.0f);  // nothing past the keys
      }
      CHECK(worst < 1e-6);
    };
    check_scores(k, k);
    const auto [k_half, k_wide] = bf16_and_widened(k);  // bf16 key rows, widened as they are loaded
    check_scores(k_half, k_wide);
  });
}

TEST_CASE("pv_rows: output rows rescaled, then every key's value row added, at any row count and width") {
  std::mt19937 rng(5);
  for_each_shape([&](const longattn::simd::KernelTable& kernels, std::int64_t rows, std::int64_t dv,
                     std::int64_t count) {
    for (bool rescale : {false, true}) {
      CAPTURE(rescale);
      const std::int64_t ldp = count + 3, ldv = dv + 5, ldo = dv + 2;
      const std::vector<float> p = random_floats(rows * ldp, rng), v = random_floats(count * ldv + 1, rng);
      const std::vector<float> start = random_floats(rows * ldo, rng), scales = random_floats(rows, rng);
      std::vector<float> o = start;
      kernels.rows.pv_rows(p.data(), rows, ldp, count, v.data() + 1, ldv, dv, o.data(), ldo,
                      rescale ? scales.data() : nullptr);
      double worst = 0;
      for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t c = 0; c < ldo; ++c) {
          if (c >= dv) {  // the row's padding is not touched
            CHECK(o[r * ldo + c] == start[r * ldo + c]);
            continue;
          }
          double sum = double(start[r * ldo + c]) * (rescale ? scales[r] : 1.0);
          double magnitude = std::abs(sum);
          for (std::int64_t j = 0; j < count; ++j) {
            sum += double(p[r * ldp + j]) * v[1 + j * ldv + c];
            magnitude += std::abs(double(p[r * ldp + j]) * v[1 + j * ldv + c]);
          }
          worst = std::max(worst, std::abs(o[r * ldo + c] - sum) / magnitude);
        }
      }
      CHECK(worst < 1e-6);
      // bf16 value rows: the fp32 kernel's bits on the widened values.
      const auto [v_half, v_wide] = bf16_and_widened(v);
      std::vector<float> from_half = start, from_wide = start;
      kernels.rows.pv_rows_bf16(p.data(), rows, ldp, count, v_half.data() + 1, ldv, dv, from_half.data(), ldo,
                           rescale ? scales.data() : nullptr);
      kernels.rows.pv_rows(p.data(), rows, ldp, count, v_wide.data() + 1, ldv, dv, from_wide.data(), ldo,
                      rescale ? scales.data() : nullptr);
      CHECK(from_half == from_wide);
    }
  });
}
