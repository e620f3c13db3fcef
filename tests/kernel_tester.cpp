#include "tests/kernel_tester.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "engine/aligned_buffer.hpp"
#include "simd/denormals.hpp"
#include "simd/targets.hpp"
#include "tests/attention_tester.hpp"

namespace longattn::testing {
namespace {

constexpr double kUlp = 1.0 / (1 << 23);  // fp32's unit roundoff, twice
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Cache-line aligned floats, as the engine hands the kernels their buffers.
class Floats {
 public:
  explicit Floats(std::int64_t n, float fill = 0.0f) : buffer_(std::max<std::int64_t>(n, 1)), n_(n) {
    std::fill(data(), data() + n_, fill);
  }
  Floats(Floats&&) = default;
  Floats(const Floats& other) : Floats(other.n_) { std::copy_n(other.data(), n_, data()); }
  float* data() { return buffer_.data(); }
  const float* data() const { return buffer_.data(); }
  float& operator[](std::int64_t i) { return data()[i]; }
  float operator[](std::int64_t i) const { return data()[i]; }
  std::int64_t size() const { return n_; }

 private:
  engine::AlignedBuffer buffer_;
  std::int64_t n_;
};

Floats random_floats(std::int64_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> uniform(lo, hi);
  Floats x(n);
  for (std::int64_t i = 0; i < n; ++i) x[i] = uniform(rng);
  return x;
}

// Keys [nk][d] (rows d floats apart) as panels [d][P] of P keys each, zero past nk.
Floats panels_of(const Floats& keys, std::int64_t nk, std::int64_t d, std::int64_t P) {
  const std::int64_t panels = (nk + P - 1) / P;
  Floats out(panels * d * P);
  for (std::int64_t j = 0; j < nk; ++j) {
    for (std::int64_t f = 0; f < d; ++f) out[(j / P) * d * P + f * P + j % P] = keys[j * d + f];
  }
  return out;
}

void expect_near(double actual, double expected, double tolerance, const std::string& what) {
  if (std::abs(actual - expected) > tolerance || std::isnan(actual) != std::isnan(expected)) {
    CAPTURE(what);
    CAPTURE(actual);
    CAPTURE(expected);
    CAPTURE(tolerance);
    CHECK(std::abs(actual - expected) <= tolerance);
  }
}

// A kernel's row maxima: each row's start raised to the largest of its `cols` stored scores.
void expect_row_max(const float* s, std::int64_t lds, std::int64_t rows, std::int64_t cols, const float* start,
                    const float* row_max) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = s + r * lds;
    CHECK(row_max[r] == std::max(start == nullptr ? kNegInf : start[r], *std::max_element(row, row + cols)));
  }
}

// The inputs of a QKᵀ tile: queries, keys packed in panels, the optional terms.
struct ScoreTile {
  std::int64_t rows, depth, first_key, keys, lds;
  Floats q, key_rows, panels, diagonals;
  std::vector<std::int32_t> bounds;

  ScoreTile(std::int64_t rows, std::int64_t depth, std::int64_t first_key, std::int64_t keys, std::int64_t P,
            std::int64_t lanes, std::mt19937& rng)
      : rows(rows), depth(depth), first_key(first_key), keys(keys), lds(keys + lanes),
        q(random_floats(rows * depth, rng)), key_rows(random_floats((first_key + keys) * depth, rng)),
        panels(panels_of(key_rows, first_key + keys, depth, P)),
        diagonals(random_floats(rows - 1 + keys, rng, -2.0f, 2.0f)) {
    std::uniform_int_distribution<std::int64_t> column(-lanes, keys + lanes);
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t a = column(rng), b = column(rng);
      bounds.push_back(static_cast<std::int32_t>(std::min(a, b)));
      bounds.push_back(static_cast<std::int32_t>(std::max(a, b)));
    }
  }
  // The exact score of (r, c) with the diagonal term when asked, and the magnitude its
  // rounding error scales with.
  double score(std::int64_t r, std::int64_t c, bool with_diagonals, double& magnitude) const {
    double dot = 0;
    magnitude = 0;
    for (std::int64_t f = 0; f < depth; ++f) {
      const double term = double(q[r * depth + f]) * key_rows[(first_key + c) * depth + f];
      dot += term;
      magnitude += std::abs(term);
    }
    if (with_diagonals) {
      dot += diagonals[c + rows - 1 - r];
      magnitude += std::abs(diagonals[c + rows - 1 - r]);
    }
    return dot;
  }
  bool visible(std::int64_t r, std::int64_t c) const { return c >= bounds[2 * r] && c < bounds[2 * r + 1]; }
};

}  // namespace

std::vector<KernelTarget> kernel_targets() {
  std::vector<KernelTarget> all;
  for (Isa isa : runnable_isas()) {
    if (isa == Isa::avx2) {  // both AVX2 builds, whichever the CPU gets
      all.push_back({&simd::avx2_kernels(), "avx2"});
      all.push_back({&simd::avx2_unrolled_kernels(), "avx2, blocks unrolled"});
    } else {
      all.push_back({&simd::kernels_for(isa), to_string(isa)});
    }
  }
  return all;
}

std::vector<KernelTarget> bf16_targets() {
  const std::vector<Isa> isas = runnable_isas();
  if (std::ranges::find(isas, Isa::avx512) == isas.end() || !simd::cpu_has_avx512_bf16()) return {};
  return {{&simd::avx512_kernels(), "avx512 bf16 products"}};
}

void KernelTester::qk_scores(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::KernelTable& k = *target.table;
  const ScoreTile t(rows_, depth_, first_key_, keys_, k.panel_width, k.lanes, rng);
  Floats s(rows_ * t.lds, 1234.0f), row_max(rows_);
  for (std::int64_t r = 0; r < rows_; ++r) row_max[r] = r % 3 == 0 ? kNegInf : r % 3 == 1 ? 100.0f : -100.0f;
  const Floats max_before = row_max;
  simd::PrefetchQueue prefetch;
  k.tile.qk_scores(t.q.data(), rows_, depth_, t.panels.data(), first_key_, keys_, s.data(), t.lds,
                   {diagonals_ ? t.diagonals.data() : nullptr}, row_max.data(), prefetch);
  for (std::int64_t r = 0; r < rows_; ++r) {
    for (std::int64_t c = 0; c < keys_; ++c) {
      double magnitude = 0;
      const double expected = t.score(r, c, diagonals_, magnitude);
      expect_near(s[r * t.lds + c], expected, kUlp * double(depth_ + 2) * magnitude + 1e-30, "score");
    }
    for (std::int64_t c = keys_; c < t.lds; ++c) CHECK(s[r * t.lds + c] == 1234.0f);  // nothing past the tile
  }
  expect_row_max(s.data(), t.lds, rows_, keys_, max_before.data(), row_max.data());
}

void KernelTester::qk_probabilities(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::DenormalsFlushed flushed;
  const simd::KernelTable& k = *target.table;
  const ScoreTile t(rows_, depth_, first_key_, keys_, k.panel_width, k.lanes, rng);
  const Floats shift = random_floats(rows_, rng, -4.0f, 1.0f);
  Floats s(rows_ * t.lds, 1234.0f), row_sum(rows_, 1234.0f);
  simd::PrefetchQueue prefetch;
  const simd::ScoreTerms terms{diagonals_ ? t.diagonals.data() : nullptr, bounds_ ? t.bounds.data() : nullptr};
  k.tile.qk_probabilities(t.q.data(), rows_, depth_, t.panels.data(), first_key_, keys_, s.data(), t.lds,
                          shift.data(), terms, row_sum.data(), prefetch);
  for (std::int64_t r = 0; r < rows_; ++r) {
    double sum = 0;
    for (std::int64_t c = 0; c < keys_; ++c) {
      double magnitude = 0;
      const double x = shift[r] + t.score(r, c, diagonals_, magnitude);
      const double expected = bounds_ && !t.visible(r, c) ? 0.0 : std::exp2(x);
      const double score_error = kUlp * double(depth_ + 3) * (magnitude + std::abs(shift[r]));
      expect_near(s[r * t.lds + c], expected, expected * (std::log(2.0) * score_error + 3 * kUlp) + 2e-38,
                  "probability");
      sum += s[r * t.lds + c];
    }
    expect_near(row_sum[r], sum, kUlp * double(keys_ + 1) * sum + 1e-37, "row sum");
  }
}

void KernelTester::pv_tile(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::KernelTable& k = *target.table;
  const std::int64_t ldp = keys_ + 3, dv = columns_, ldv = dv + (streamed_ ? k.lanes : 0);
  const Floats p = random_floats(rows_ * ldp, rng, 0.0f, 1.0f);
  const Floats v = random_floats(std::max<std::int64_t>(keys_, 1) * ldv, rng);
  const Floats scale = random_floats(rows_, rng, 0.0f, 2.0f);
  Floats o = random_floats(rows_ * dv, rng);
  const Floats before = o;
  simd::PrefetchQueue prefetch;
  k.tile.pv_tile(p.data(), rows_, ldp, keys_, v.data(), ldv, dv, o.data(), row_scale_ ? scale.data() : nullptr,
                 prefetch);
  for (std::int64_t r = 0; r < rows_; ++r) {
    for (std::int64_t c = 0; c < dv; ++c) {
      const double start = double(before[r * dv + c]) * (row_scale_ ? scale[r] : 1.0f);
      double expected = start, magnitude = std::abs(start);
      for (std::int64_t j = 0; j < keys_; ++j) {
        expected += double(p[r * ldp + j]) * v[j * ldv + c];
        magnitude += std::abs(double(p[r * ldp + j]) * v[j * ldv + c]);
      }
      expect_near(o[r * dv + c], expected, kUlp * double(keys_ + 3) * magnitude + 1e-30, "output");
    }
  }
}

void KernelTester::additive_tile(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::KernelTable& k = *target.table;
  const std::int64_t P = k.panel_width, n = keys_, lds = n + k.lanes;  // keys_: whole panels
  const Floats qp = random_floats(rows_ * depth_, rng, -2.0f, 2.0f), kp = random_floats(n * depth_, rng, -2.0f, 2.0f);
  const Floats panels = panels_of(kp, n, depth_, P), w = random_floats(depth_, rng);
  Floats s(rows_ * lds), row_max(rows_, kNegInf);
  const float scale = 1.4426950f;
  k.tile.additive_tile(qp.data(), rows_, depth_, panels.data(), n / P, w.data(), scale, s.data(), lds, row_max.data());
  for (std::int64_t r = 0; r < rows_; ++r) {
    for (std::int64_t c = 0; c < n; ++c) {
      double expected = 0, magnitude = 0;
      for (std::int64_t a = 0; a < depth_; ++a) {
        expected += double(w[a]) * std::tanh(double(qp[r * depth_ + a]) + kp[c * depth_ + a]);
        magnitude += std::abs(w[a]);
      }
      expect_near(s[r * lds + c], scale * expected, 1e-6 * scale * magnitude + 1e-30, "additive score");
    }
  }
  expect_row_max(s.data(), lds, rows_, n, nullptr, row_max.data());
}

void KernelTester::exp2_rows(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::DenormalsFlushed flushed;
  const simd::KernelTable& k = *target.table;
  const std::int64_t cols = columns_, lds = cols + k.lanes;
  Floats s = random_floats(rows_ * lds, rng, -40.0f, 10.0f);
  for (std::int64_t i = 0; i < s.size(); i += 7) s[i] = kNegInf;  // masked scores
  const Floats before = s, shift = random_floats(rows_, rng, 0.0f, 10.0f);
  Floats row_sum(rows_);
  k.elementwise.exp2_rows(s.data(), rows_, lds, cols, shift.data(), row_sum.data());
  for (std::int64_t r = 0; r < rows_; ++r) {
    double sum = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const double x = double(before[r * lds + c]) - shift[r], expected = std::exp2(x);
      // 2 ulp of exp2, and the rounding of s - shift to fp32 before it.
      expect_near(s[r * lds + c], expected, expected * (3 * kUlp + std::log(2.0) * std::abs(x) * kUlp) + 2e-38, "exp2");
      if (before[r * lds + c] == kNegInf) CHECK(s[r * lds + c] == 0.0f);
      sum += s[r * lds + c];
    }
    expect_near(row_sum[r], sum, kUlp * double(cols + 1) * sum + 1e-37, "row sum");
    for (std::int64_t c = cols; c < lds; ++c) CHECK(s[r * lds + c] == before[r * lds + c]);
  }
}

void KernelTester::add_diagonal_bias(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::KernelTable& k = *target.table;
  const std::int64_t cols = columns_, lds = cols + k.lanes;
  Floats s = random_floats(rows_ * lds, rng), row_max(rows_, kNegInf);
  const Floats before = s, diagonals = random_floats(rows_ - 1 + cols, rng);
  k.elementwise.add_diagonal_bias(s.data(), rows_, lds, cols, diagonals.data(), row_max.data());
  for (std::int64_t r = 0; r < rows_; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) CHECK(s[r * lds + c] == before[r * lds + c] + diagonals[c + rows_ - 1 - r]);
  }
  expect_row_max(s.data(), lds, rows_, cols, nullptr, row_max.data());
}

void KernelTester::sigmoid_and_relu_rows(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::DenormalsFlushed flushed;
  const simd::KernelTable& k = *target.table;
  const std::int64_t cols = columns_, lds = cols + k.lanes;
  Floats s = random_floats(rows_ * lds, rng, -30.0f, 30.0f);
  for (std::int64_t i = 0; i < s.size(); i += 5) s[i] = kNegInf;
  Floats relu = s, capped = s;
  const Floats before = s;
  const float bias = -2.5f, cap = 7.0f;
  k.elementwise.sigmoid_rows(s.data(), rows_, lds, cols, bias);
  k.elementwise.relu_rows(relu.data(), rows_, lds, cols);
  Floats capped_max(rows_, kNegInf);
  k.elementwise.softcap_rows(capped.data(), rows_, lds, cols, cap, capped_max.data());
  expect_row_max(capped.data(), lds, rows_, cols, nullptr, capped_max.data());
  for (std::int64_t r = 0; r < rows_; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      const double x = double(before[r * lds + c]) + bias;
      expect_near(s[r * lds + c], 1.0 / (1.0 + std::exp(-x)), 4 * kUlp, "sigmoid");
      CHECK(relu[r * lds + c] == std::max(before[r * lds + c], 0.0f));
      // Absolute: 1 - e cancels near 0, where the score itself is small.
      const double tanh = cap * std::tanh(double(before[r * lds + c]) / cap);
      CHECK(std::abs(capped[r * lds + c] - tanh) <= 4e-7 * cap);
    }
  }
  // Past the exponent's clamp and at infinity the cap holds; NaN stays NaN.
  const float special[] = {kNegInf, -kNegInf, NAN, 1e30f, -1e30f, 300.0f, -300.0f, 0.0f};
  const std::int64_t count = std::size(special);
  Floats specials(std::max<std::int64_t>(count, k.lanes), 0.0f);
  std::copy(special, special + count, specials.data());
  float specials_max = kNegInf;
  k.elementwise.softcap_rows(specials.data(), 1, specials.size(), count, cap, &specials_max);
  for (std::int64_t i = 0; i < count; ++i) {
    if (std::isnan(special[i])) {
      CHECK(std::isnan(specials[i]));
    } else {
      CHECK(specials[i] == doctest::Approx(cap * std::tanh(double(special[i]) / cap)).epsilon(1e-6));
    }
  }
}

void KernelTester::max_of(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const Floats x = random_floats(columns_, rng, -50.0f, 50.0f);
  CHECK(target.table->elementwise.max_of(x.data(), columns_) == *std::max_element(x.data(), x.data() + columns_));
}

void KernelTester::scale_rows(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::KernelTable& k = *target.table;
  const std::int64_t cols = columns_, lda = (cols + k.lanes - 1) / k.lanes * k.lanes, ldo = cols + (streamed_ ? 0 : 1);
  const Floats acc = random_floats(rows_ * lda, rng), scale = random_floats(rows_, rng);
  Floats out(rows_ * ldo + 1, 1234.0f);
  k.elementwise.scale_rows(acc.data(), rows_, lda, scale.data(), out.data(), ldo, cols, streamed_);
  for (std::int64_t r = 0; r < rows_; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) CHECK(out[r * ldo + c] == acc[r * lda + c] * scale[r]);
    for (std::int64_t c = cols; c < ldo; ++c) CHECK(out[r * ldo + c] == 1234.0f);
  }
}

void KernelTester::widen_bf16(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const Floats x = random_floats(columns_, rng, -1e5f, 1e5f);
  std::vector<bf16> half;
  for (std::int64_t i = 0; i < columns_; ++i) half.push_back(bf16(x[i]));
  Floats widened(columns_);
  target.table->elementwise.widen_bf16(half.data(), columns_, widened.data());
  for (std::int64_t i = 0; i < columns_; ++i) CHECK(widened[i] == static_cast<float>(half[i]));
}

void KernelTester::pack_key_panel(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::KernelTable& k = *target.table;
  const std::int64_t P = k.panel_width, stride = depth_ + 3, count = keys_;  // count <= P
  const Floats keys = random_floats(std::max<std::int64_t>(count, 1) * stride, rng);
  Floats panel(depth_ * P, 1234.0f);
  const float scale = 0.125f * 1.4426950f;
  k.packing.pack_key_panel(keys.data(), stride, count, depth_, scale, panel.data(), streamed_);
  for (std::int64_t f = 0; f < depth_; ++f) {
    for (std::int64_t c = 0; c < P; ++c) {
      CHECK(panel[f * P + c] == (c < count ? keys[c * stride + f] * scale : 0.0f));
    }
  }
}

namespace {

std::vector<bf16> random_bf16(std::int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<bf16> x;
  for (std::int64_t i = 0; i < n; ++i) x.push_back(bf16(uniform(rng)));
  return x;
}

// Keys [nk][2·pairs] of bf16 as panels [pairs][P] of 4-byte pairs, zero past nk.
std::vector<bf16> pair_panels_of(const std::vector<bf16>& keys, std::int64_t nk, std::int64_t pairs, std::int64_t P) {
  std::vector<bf16> out(static_cast<std::size_t>((nk + P - 1) / P * pairs * P * 2));
  for (std::int64_t j = 0; j < nk; ++j) {
    for (std::int64_t f = 0; f < pairs; ++f) {
      const std::int64_t unit = (j / P) * pairs * P + f * P + j % P;
      out[2 * unit] = keys[j * 2 * pairs + 2 * f];
      out[2 * unit + 1] = keys[j * 2 * pairs + 2 * f + 1];
    }
  }
  return out;
}

// A bf16 QKᵀ tile: q rows and key rows of 2·depth bf16 features, the keys in pair panels.
struct PairTile {
  std::int64_t rows, pairs, first_key, keys, lds;
  std::vector<bf16> q, key_rows, panels;

  PairTile(std::int64_t rows, std::int64_t pairs, std::int64_t first_key, std::int64_t keys, std::int64_t P,
           std::int64_t lanes, std::mt19937& rng)
      : rows(rows), pairs(pairs), first_key(first_key), keys(keys), lds(keys + lanes),
        q(random_bf16(rows * 2 * pairs, rng)), key_rows(random_bf16((first_key + keys) * 2 * pairs, rng)),
        panels(pair_panels_of(key_rows, first_key + keys, pairs, P)) {}
  double score(std::int64_t r, std::int64_t c, double& magnitude) const {
    double dot = 0;
    magnitude = 0;
    for (std::int64_t f = 0; f < 2 * pairs; ++f) {
      const double term = double(static_cast<float>(q[r * 2 * pairs + f])) *
                          static_cast<float>(key_rows[(first_key + c) * 2 * pairs + f]);
      dot += term;
      magnitude += std::abs(term);
    }
    return dot;
  }
};

constexpr double kBf16Ulp = 1.0 / (1 << 8);  // bf16's unit roundoff, twice

}  // namespace

void KernelTester::bf16_qk_scores(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::Bf16DotKernels& k = *target.table->bf16_dot;
  const PairTile t(rows_, depth_, first_key_, keys_, target.table->panel_width, target.table->lanes, rng);
  Floats s(rows_ * t.lds, 1234.0f), row_max(rows_, kNegInf);
  const float scale = 0.18033688f;
  simd::PrefetchQueue prefetch;
  k.qk_scores(t.q.data(), rows_, depth_, t.panels.data(), first_key_, keys_, s.data(), t.lds, scale, {}, row_max.data(),
              prefetch);
  for (std::int64_t r = 0; r < rows_; ++r) {
    for (std::int64_t c = 0; c < keys_; ++c) {
      double magnitude = 0;
      const double expected = scale * t.score(r, c, magnitude);
      expect_near(s[r * t.lds + c], expected, kUlp * double(2 * depth_ + 3) * scale * magnitude + 1e-30, "bf16 score");
    }
    for (std::int64_t c = keys_; c < t.lds; ++c) CHECK(s[r * t.lds + c] == 1234.0f);
  }
  expect_row_max(s.data(), t.lds, rows_, keys_, nullptr, row_max.data());
}

void KernelTester::bf16_qk_probabilities(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::DenormalsFlushed flushed;
  const simd::Bf16DotKernels& k = *target.table->bf16_dot;
  const PairTile t(rows_, depth_, first_key_, keys_, target.table->panel_width, target.table->lanes, rng);
  const Floats shift = random_floats(rows_, rng, -4.0f, 1.0f);
  Floats s(rows_ * t.lds), row_sum(rows_);
  const float scale = 0.18033688f;
  simd::PrefetchQueue prefetch;
  k.qk_probabilities(t.q.data(), rows_, depth_, t.panels.data(), first_key_, keys_, s.data(), t.lds, scale,
                     shift.data(), {}, row_sum.data(), prefetch);
  for (std::int64_t r = 0; r < rows_; ++r) {
    const bf16* stored = reinterpret_cast<const bf16*>(s.data() + r * t.lds);  // bf16 over the row's start
    double sum = 0, sum_error = 0;
    for (std::int64_t c = 0; c < keys_; ++c) {
      double magnitude = 0;
      const double expected = std::exp2(shift[r] + scale * t.score(r, c, magnitude));
      const double error = expected * std::log(2.0) * kUlp * double(2 * depth_ + 4) * (scale * magnitude + 1) + 2e-38;
      expect_near(static_cast<float>(stored[c]), expected, expected * kBf16Ulp + error, "bf16 probability");
      sum += expected;
      sum_error += error + expected * kUlp * double(keys_ + 1);
    }
    expect_near(row_sum[r], sum, sum_error + 1e-37, "row sum of the unrounded probabilities");
  }
}

void KernelTester::bf16_pv_tile(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::KernelTable& table = *target.table;
  const std::int64_t dv = columns_, ldp = keys_ + 2 * table.lanes, key_pairs = (keys_ + 1) / 2;
  const std::vector<bf16> values = random_bf16(std::max<std::int64_t>(keys_, 1) * dv, rng);
  std::vector<bf16> value_pairs(static_cast<std::size_t>(std::max<std::int64_t>(key_pairs, 1) * dv * 2));
  table.bf16_dot->pack_value_pairs(values.data(), dv, keys_, dv, dv, value_pairs.data());
  for (bool p_in_bf16 : {false, true}) {
    CAPTURE(p_in_bf16);
    Floats p = random_floats(rows_ * ldp, rng, 0.0f, 1.0f);
    if (keys_ % 2 == 1) {  // the missing partner of an odd last key has p = 0
      for (std::int64_t r = 0; r < rows_; ++r) p[r * ldp + keys_] = 0.0f;
    }
    std::vector<float> rounded(static_cast<std::size_t>(rows_ * ldp));
    for (std::int64_t i = 0; i < rows_ * ldp; ++i) rounded[i] = static_cast<float>(bf16(p[i]));
    if (p_in_bf16) {  // as qk_probabilities stores them
      for (std::int64_t r = 0; r < rows_; ++r) {
        std::vector<bf16> row(static_cast<std::size_t>(ldp));
        for (std::int64_t j = 0; j < ldp; ++j) row[j] = bf16(p[r * ldp + j]);
        std::memcpy(p.data() + r * ldp, row.data(), static_cast<std::size_t>(keys_ + 1) * sizeof(bf16));
      }
    }
    const Floats scale = random_floats(rows_, rng, 0.0f, 2.0f);
    Floats o = random_floats(rows_ * dv, rng);
    const Floats before = o;
    simd::PrefetchQueue prefetch;
    table.bf16_dot->pv_tile(p.data(), rows_, ldp, keys_, value_pairs.data(), dv, o.data(),
                            row_scale_ ? scale.data() : nullptr, p_in_bf16, prefetch);
    for (std::int64_t r = 0; r < rows_; ++r) {
      for (std::int64_t c = 0; c < dv; ++c) {
        const double start = double(before[r * dv + c]) * (row_scale_ ? scale[r] : 1.0f);
        double expected = start, magnitude = std::abs(start);
        for (std::int64_t j = 0; j < keys_; ++j) {
          const double term = double(rounded[r * ldp + j]) * static_cast<float>(values[j * dv + c]);
          expected += term;
          magnitude += std::abs(term);
        }
        expect_near(o[r * dv + c], expected, kUlp * double(keys_ + 3) * magnitude + 1e-30, "bf16 output");
      }
    }
  }
}

void KernelTester::bf16_packing(const KernelTarget& target) const {
  std::mt19937 rng(seed_);
  const simd::Bf16DotKernels& k = *target.table->bf16_dot;
  const std::int64_t P = target.table->panel_width, pairs = depth_, stride = 2 * pairs + 2, count = keys_;
  const std::vector<bf16> keys = random_bf16(std::max<std::int64_t>(count, 1) * stride, rng);
  Floats panel_units(pairs * P, 1234.0f);  // aligned, as streamed stores need
  bf16* panel = reinterpret_cast<bf16*>(panel_units.data());
  k.pack_key_panel(keys.data(), stride, count, pairs, panel, streamed_);
  for (std::int64_t f = 0; f < pairs; ++f) {
    for (std::int64_t c = 0; c < P; ++c) {
      for (int half = 0; half < 2; ++half) {
        const std::uint16_t expected = c < count ? keys[c * stride + 2 * f + half].bits : 0;
        CHECK(panel[2 * (f * P + c) + half].bits == expected);
      }
    }
  }
  const std::int64_t dv = columns_, dv_padded = (dv + 15) / 16 * 16;  // value pair rows
  const std::vector<bf16> values = random_bf16(std::max<std::int64_t>(count, 1) * (dv + 1), rng);
  std::vector<bf16> pair_rows(static_cast<std::size_t>(std::max<std::int64_t>((count + 1) / 2, 1) * dv_padded * 2));
  k.pack_value_pairs(values.data(), dv + 1, count, dv, dv_padded, pair_rows.data());
  for (std::int64_t t = 0; 2 * t < count; ++t) {
    for (std::int64_t c = 0; c < dv_padded; ++c) {
      const std::uint16_t even = c < dv ? values[2 * t * (dv + 1) + c].bits : 0;
      const std::uint16_t odd = c < dv && 2 * t + 1 < count ? values[(2 * t + 1) * (dv + 1) + c].bits : 0;
      CHECK(pair_rows[2 * (t * dv_padded + c)].bits == even);
      CHECK(pair_rows[2 * (t * dv_padded + c) + 1].bits == odd);
    }
  }
}

}  // namespace longattn::testing
