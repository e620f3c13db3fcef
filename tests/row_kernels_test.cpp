// The decoding kernels (qk_rows, pv_rows) of every ISA path against plain fp64 loops, over
// the shapes of for_each_shape, with rows at any alignment and stride.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "simd/kernel_table.hpp"
#include "simd/targets.hpp"
#include "tests/attention_tester.hpp"

namespace {

std::vector<const longattn::simd::KernelTable*> tables() {
  std::vector<const longattn::simd::KernelTable*> all;
  for (longattn::Isa isa : longattn::testing::runnable_isas()) all.push_back(&longattn::simd::kernels_for(isa));
  if (longattn::simd::cpu_supports(longattn::Isa::avx2)) {  // both AVX2 builds, whichever the CPU gets
    all.push_back(&longattn::simd::avx2_kernels());
    all.push_back(&longattn::simd::avx2_unrolled_kernels());
  }
  return all;
}

std::vector<float> random_floats(std::size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = uniform(rng);
  return x;
}

// check(kernels, rows, width, count) for every kernel table and every shape both tests run:
// row counts on both sides of the key-block threshold (8) and of the row groups, widths (the
// depth of QKᵀ, the value rows of P·V) with and without a tail, key counts that leave key
// blocks unfinished.
template <class Check>
void for_each_shape(Check check) {
  for (const longattn::simd::KernelTable* kernels : tables()) {
    CAPTURE(kernels->name);
    for (std::int64_t rows : {1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16}) {
      for (std::int64_t width : {1, 3, 8, 37, 64, 128}) {
        for (std::int64_t count : {1, 2, 3, 5, 33}) {
          CAPTURE(rows);
          CAPTURE(width);
          CAPTURE(count);
          check(*kernels, rows, width, count);
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("qk_rows: every row against every key, in place, at any row count, depth and stride") {
  std::mt19937 rng(3);
  for_each_shape([&](const longattn::simd::KernelTable& kernels, std::int64_t rows, std::int64_t d,
                     std::int64_t count) {
    const std::int64_t ldq = d + 3, ldk = d + 5, lds = count + 2;  // rows apart, unaligned
    const std::vector<float> q = random_floats(rows * ldq + 1, rng), k = random_floats(count * ldk + 1, rng);
    std::vector<float> s(rows * lds, -7.0f);
    const float scale = 0.375f;
    kernels.qk_rows(q.data() + 1, rows, ldq, d, k.data() + 1, ldk, count, scale, s.data(), lds);
    double worst = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < count; ++c) {
        double dot = 0, magnitude = 0;
        for (std::int64_t f = 0; f < d; ++f) {
          dot += double(q[1 + r * ldq + f]) * k[1 + c * ldk + f];
          magnitude += std::abs(double(q[1 + r * ldq + f]) * k[1 + c * ldk + f]);
        }
        worst = std::max(worst, std::abs(s[r * lds + c] - scale * dot) / (scale * magnitude));
      }
      for (std::int64_t c = count; c < lds; ++c) CHECK(s[r * lds + c] == -7.0f);  // nothing past the keys
    }
    CHECK(worst < 1e-6);
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
      kernels.pv_rows(p.data(), rows, ldp, count, v.data() + 1, ldv, dv, o.data(), ldo,
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
    }
  });
}
