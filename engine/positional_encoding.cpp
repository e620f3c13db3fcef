#include "engine/positional_encoding.hpp"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>

#include "longattn/error.hpp"
#include "longattn/positional.hpp"

namespace longattn {

std::vector<double> alibi_slopes(std::int64_t heads) {
  if (heads < 1) throw Error("alibi_slopes: expected heads >= 1, got " + std::to_string(heads));
  // A power of two H: the geometric sequence starting at and stepping by 2^(-8/H).
  auto power_of_two_slopes = [](std::int64_t h) {
    std::vector<double> slopes(static_cast<std::size_t>(h));
    for (std::int64_t i = 0; i < h; ++i) slopes[i] = std::exp2(-8.0 * static_cast<double>(i + 1) / static_cast<double>(h));
    return slopes;
  };
  const auto lower = static_cast<std::int64_t>(std::bit_floor(static_cast<std::uint64_t>(heads)));
  std::vector<double> slopes = power_of_two_slopes(lower);
  const std::vector<double> doubled = power_of_two_slopes(2 * lower);
  for (std::int64_t i = 0; static_cast<std::int64_t>(slopes.size()) < heads; i += 2) slopes.push_back(doubled[i]);
  return slopes;
}

void sinusoidal_table(std::int64_t n, std::int64_t d, float* out) {
  if (n < 0 || d < 1) {
    throw Error("sinusoidal_table: expected n >= 0 and d >= 1, got n = " + std::to_string(n) + ", d = " + std::to_string(d));
  }
  for (std::int64_t c = 0; c < d; ++c) {
    const double frequency = std::pow(10000.0, -static_cast<double>(c / 2 * 2) / static_cast<double>(d));
    for (std::int64_t p = 0; p < n; ++p) {
      const double angle = static_cast<double>(p) * frequency;
      out[p * d + c] = static_cast<float>(c % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
  }
}

std::vector<float> sinusoidal_table(std::int64_t n, std::int64_t d) {
  std::vector<float> table(static_cast<std::size_t>(std::max<std::int64_t>(0, n) * std::max<std::int64_t>(0, d)));
  sinusoidal_table(n, d, table.data());
  return table;
}

}  // namespace longattn

namespace longattn::engine {

RotaryTable::RotaryTable(const Rope& rope, std::int64_t d, std::int64_t positions)
    : pairing_(rope.pairing), pairs_(d / 2) {
  if (!enabled()) return;
  const std::int64_t high_rows = positions / kLowPositions + 1;
  // Checked before it is asked for: an allocation of more than the machine has may succeed
  // (overcommit) and fail only as its pages are touched, or abort under a sanitizer.
  const double bytes = double(high_rows + kLowPositions) * double(pairs_) * 2.0 * sizeof(double);
  const double memory = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
  if (bytes > memory) {
    throw Error("attention: out of memory: RoPE's table for " + std::to_string(positions) + " positions needs " +
                std::to_string(bytes / double(1 << 30)) + " GiB, more than this machine's " +
                std::to_string(memory / double(1 << 30)) + " GiB");
  }
  low_.resize(static_cast<std::size_t>(kLowPositions * pairs_ * 2));
  high_.resize(static_cast<std::size_t>(high_rows * pairs_ * 2));
  for (std::int64_t i = 0; i < pairs_; ++i) {
    const double theta = std::pow(rope.base, -2.0 * static_cast<double>(i) / static_cast<double>(d));
    for (std::int64_t p = 0; p < kLowPositions; ++p) {
      low_[(p * pairs_ + i) * 2] = std::cos(static_cast<double>(p) * theta);
      low_[(p * pairs_ + i) * 2 + 1] = std::sin(static_cast<double>(p) * theta);
    }
    for (std::int64_t p = 0; p < high_rows; ++p) {
      const double angle = static_cast<double>(p * kLowPositions) * theta;
      high_[(p * pairs_ + i) * 2] = std::cos(angle);
      high_[(p * pairs_ + i) * 2 + 1] = std::sin(angle);
    }
  }
}

void RotaryTable::rotate(const float* x, std::int64_t stride, std::int64_t position, float scale, float* y) const {
  // Queries before key 0 (Nq > Nk) sit at negative positions: the rotation turns backwards.
  const std::int64_t p = position < 0 ? -position : position;
  const double sign = position < 0 ? -1.0 : 1.0;
  const double* low = &low_[static_cast<std::size_t>(p % kLowPositions * pairs_ * 2)];
  const double* high = &high_[static_cast<std::size_t>(p / kLowPositions * pairs_ * 2)];
  const bool half = pairing_ == RopePairing::half;
  for (std::int64_t i = 0; i < pairs_; ++i) {
    const double c = high[2 * i] * low[2 * i] - high[2 * i + 1] * low[2 * i + 1];
    const double s = sign * (high[2 * i + 1] * low[2 * i] + high[2 * i] * low[2 * i + 1]);
    const std::int64_t a = half ? i : 2 * i, b = half ? i + pairs_ : 2 * i + 1;
    const double xa = x[a * stride], xb = x[b * stride];
    y[a] = static_cast<float>((xa * c - xb * s) * scale);
    y[b] = static_cast<float>((xa * s + xb * c) * scale);
  }
}

PositionBias::PositionBias(const AttentionShape& shape, const AttentionOptions& options, float score_unit)
    : alibi_(options.alibi) {
  if (alibi_) {
    for (double slope : alibi_slopes(shape.q_heads)) slopes_.push_back(static_cast<float>(slope * score_unit));
  }
  const TensorView<const float, 2>& table = options.relative_bias;
  if (!table.empty()) {
    clip_ = (table.shape[1] - 1) / 2;
    relative_.resize(static_cast<std::size_t>(table.shape[0] * table.shape[1]));
    for (std::int64_t h = 0; h < table.shape[0]; ++h) {
      for (std::int64_t t = 0; t < table.shape[1]; ++t) {
        relative_[h * table.shape[1] + t] = table.data[h * table.strides[0] + t * table.strides[1]] * score_unit;
      }
    }
  }
}

void PositionBias::fill(std::int64_t h, std::int64_t first_offset, std::int64_t count, float* out) const {
  for (std::int64_t t = 0; t < count; ++t) {
    const std::int64_t offset = first_offset + t;
    float bias = 0.0f;
    if (alibi_) bias = -slopes_[h] * static_cast<float>(offset < 0 ? -offset : offset);
    if (!relative_.empty()) bias += relative_[h * (2 * clip_ + 1) + std::clamp(offset, -clip_, clip_) + clip_];
    out[t] = bias;
  }
}

}  // namespace longattn::engine
