// Positional encodings inside the kernel (DESIGN.md §1): RoPE rotations applied while q is
// copied and k is packed, and the ALiBi / relative-position score bias, evaluated per tile
// along its diagonals because both depend on the key's offset from the query alone.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/attention_validation.hpp"
#include "longattn/options.hpp"

namespace longattn::engine {

// cos and sin of position · θ_i for every pair i, θ_i = base^(-2i/D). Angles of large
// positions lose accuracy in float, so position = 256·hi + lo is split and the two rotations,
// each tabulated in double, are composed: O((256 + n/256)·D) memory at any n.
class RotaryTable {
 public:
  RotaryTable() = default;
  RotaryTable(const Rope& rope, std::int64_t d, std::int64_t positions);

  bool enabled() const { return pairing_ != RopePairing::none; }

  // y[0 .. D) = rotate(x at `position`) · scale; x's features are `stride` floats apart.
  // y may be x (stride 1): each pair is read before it is written.
  void rotate(const float* x, std::int64_t stride, std::int64_t position, float scale, float* y) const;

 private:
  static constexpr std::int64_t kLowPositions = 256;
  RopePairing pairing_ = RopePairing::none;
  std::int64_t pairs_ = 0;
  std::vector<double> low_, high_;  // [position][pair][cos, sin]
};

// The additive score term of ALiBi and the relative position bias, both functions of the
// offset δ = j - pos_i alone, already in the units of the kernel's scores.
class PositionBias {
 public:
  PositionBias() = default;
  // score_unit: what the kernel's scores are multiplied by (log2 e for softmax, which runs on
  // exp2; 1 otherwise).
  PositionBias(const AttentionShape& shape, const AttentionOptions& options, float score_unit);

  bool enabled() const { return alibi_ || !relative_.empty(); }

  // out[t] = bias of query head h at offset δ = first_offset + t, for t < count.
  void fill(std::int64_t h, std::int64_t first_offset, std::int64_t count, float* out) const;

 private:
  bool alibi_ = false;
  std::vector<float> slopes_;    // [Hq], times score_unit
  std::vector<float> relative_;  // [Hq][2K+1], times score_unit
  std::int64_t clip_ = 0;        // K
};

}  // namespace longattn::engine
