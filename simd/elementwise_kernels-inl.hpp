// Element-wise kernels over rows of scores and outputs: exp2 with row sums, position bias
// along diagonals, sigmoid and relu weights, row maxima, scaled output rows, bf16 widening.
// Part of the kernels one target compiles (simd/kernel_table-inl.hpp): included once per
// target translation unit, inside that target's namespace.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "simd/kernel_table.hpp"
#include "simd/softcap-inl.hpp"
#include "simd/vec_f32.hpp"

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// Vectors of a row the AVX-512 exp2 pass runs as straight-line code: unrolled this far, the
// compiler interleaves the polynomials of consecutive vectors (bench/TUNING.md "exp2"); AVX2,
// with 16 registers, gains nothing from it.
inline constexpr int kExp2SegmentVectors = 16;

template <class V>
void exp2_rows(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols, const float* row_max,
               float* row_sum) {
  constexpr int L = V::lanes;
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    const V m = V::broadcast(row_max[r]);
    // Two partial sums so consecutive vectors do not wait on one add chain.
    V sum0 = V::zero(), sum1 = V::zero();
    auto two_vectors = [&](std::int64_t j) {
      const V e0 = exp2(V::load(row + j) - m), e1 = exp2(V::load(row + j + L) - m);
      e0.store(row + j);
      e1.store(row + j + L);
      sum0 = sum0 + e0;
      sum1 = sum1 + e1;
    };
    std::int64_t j = 0;
    if constexpr (L == 16) {
      constexpr int segment = kExp2SegmentVectors * L;
      for (; j + segment <= cols; j += segment) {
#pragma GCC unroll 16
        for (int u = 0; u < segment; u += 2 * L) two_vectors(j + u);
      }
    }
    for (; j + 2 * L <= cols; j += 2 * L) two_vectors(j);
    for (; j < cols; j += L) {
      const V e = exp2(V::load(row + j) - m);
      e.store(row + j);
      sum0 = sum0 + e;
    }
    row_sum[r] = (sum0 + sum1).reduce_add();
  }
}

// s[r][c] += diagonals[c + rows - 1 - r]: a term that depends on c - r alone (a position
// bias: the key's offset from the query), read as one unaligned vector per row and column
// block; row_max[r] is raised to the row's largest biased score.
template <class V>
void add_diagonal_bias(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols,
                       const float* diagonals, float* row_max) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    const float* bias = diagonals + (rows - 1 - r);
    V vmax = V::broadcast(-std::numeric_limits<float>::infinity());
    for (std::int64_t j = 0; j < cols; j += V::lanes) {
      const V x = V::load(row + j) + V::load(bias + j);
      x.store(row + j);
      vmax = max(vmax, x);
    }
    const float m = vmax.reduce_max();
    if (m > row_max[r]) row_max[r] = m;
  }
}

// p = sigmoid(s + bias) = 1 / (1 + 2^(-(s + bias)·log2 e)) in place. The argument of exp2 is
// capped at 128, where 2^128 = +inf gives p = 0 exactly: also for masked scores (-inf). So it
// is finite, and exp2 needs no lane mask (the engine flushes denormals).
template <class V>
void sigmoid_rows(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols, float bias) {
  constexpr float kLog2e = 1.4426950408889634f;
  const V minus_log2e = V::broadcast(-kLog2e), shift = V::broadcast(-bias * kLog2e);
  const V one = V::broadcast(1.0f), cap = V::broadcast(128.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    for (std::int64_t j = 0; j < cols; j += V::lanes) {
      const V t = min(cap, fma(V::load(row + j), minus_log2e, shift));  // NaN stays NaN
      reciprocal_at_least_one(one + exp2_finite(t)).store(row + j);
    }
  }
}

// s = cap · tanh(s / cap) in place (soft-capping, SoftCap), row_max[r] raised to the row's
// largest new score.
template <class V>
void softcap_rows(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols, float cap, float* row_max) {
  const SoftCap<V> capped(cap);
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    V m = V::broadcast(row_max[r]);
    for (std::int64_t j = 0; j < cols; j += V::lanes) {
      const V x = capped(V::load(row + j));
      x.store(row + j);
      m = max(m, x);
    }
    row_max[r] = m.reduce_max();
  }
}

// p = max(s, 0) in place (masked scores, -inf, become 0; NaN stays NaN).
template <class V>
void relu_rows(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols) {
  const V zero = V::zero();
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    for (std::int64_t j = 0; j < cols; j += V::lanes) max(zero, V::load(row + j)).store(row + j);
  }
}

// out[r][c] = acc[r][c] · row_scale[r] for r < rows, c < cols. With `streamed`, rows of out
// are written past the caches from their first vector boundary on (the columns before it
// stored as usual, as NumPy's 16-byte aligned arrays need): the finished output is not read
// again here, and ordinary stores first read every line they miss. Without, for rows
// the caller fetched ahead (PrefetchQueue): the stores hit the cache and the lines go to
// memory later, in the background (bench/TUNING.md "Streaming stores").
template <class V>
void scale_rows(const float* acc, std::int64_t rows, std::int64_t lda, const float* row_scale, float* out,
                std::int64_t ldo, std::int64_t cols, bool streamed) {
  constexpr int L = V::lanes;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* in = acc + r * lda;
    float* row = out + r * ldo;
    const V scale = V::broadcast(row_scale[r]);
    std::int64_t c = 0;
    if (streamed) {  // the columns before the row's first aligned vector, then streamed vectors
      const auto misaligned = static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(row) / sizeof(float) % L);
      for (const std::int64_t head = std::min(cols, misaligned == 0 ? 0 : L - misaligned); c < head; ++c) {
        row[c] = in[c] * row_scale[r];
      }
      for (; c + L <= cols; c += L) (V::load(in + c) * scale).stream(row + c);
    }
    for (; c + L <= cols; c += L) (V::load(in + c) * scale).store(row + c);
    for (; c < cols; ++c) row[c] = in[c] * row_scale[r];
  }
  if (streamed) V::stream_fence();
}

// sums[c] += Σ_r x[r][c]: four column vectors at a time, so that four chains of adds overlap.
template <class V>
void add_columns(const float* x, std::int64_t rows, std::int64_t ldx, std::int64_t cols, float* sums) {
  constexpr int L = V::lanes, kVectors = 4;
  std::int64_t c = 0;
  for (; c + kVectors * L <= cols; c += kVectors * L) {
    V total[kVectors];
    for (int v = 0; v < kVectors; ++v) total[v] = V::load(sums + c + v * L);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (int v = 0; v < kVectors; ++v) total[v] = total[v] + V::load(x + r * ldx + c + v * L);
    }
    for (int v = 0; v < kVectors; ++v) total[v].store(sums + c + v * L);
  }
  for (; c + L <= cols; c += L) {
    V total = V::load(sums + c);
    for (std::int64_t r = 0; r < rows; ++r) total = total + V::load(x + r * ldx + c);
    total.store(sums + c);
  }
  for (; c < cols; ++c) {
    float total = sums[c];
    for (std::int64_t r = 0; r < rows; ++r) total += x[r * ldx + c];
    sums[c] = total;
  }
}

// dots[r] += x[r] · w: a vector of partial sums per row, reduced once.
template <class V>
void add_row_dots(const float* x, std::int64_t rows, std::int64_t ldx, std::int64_t cols, const float* w,
                  float* dots) {
  constexpr int L = V::lanes;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ldx;
    V acc = V::zero();
    std::int64_t c = 0;
    for (; c + L <= cols; c += L) acc = fma(V::load(row + c), V::load(w + c), acc);
    float tail = 0.0f;
    for (; c < cols; ++c) tail += row[c] * w[c];
    dots[r] += acc.reduce_add() + tail;
  }
}

template <class V>
float max_of(const float* x, std::int64_t n) {
  V m = V::broadcast(-std::numeric_limits<float>::infinity());
  for (std::int64_t j = 0; j < n; j += V::lanes) m = max(m, V::load(x + j));
  return m.reduce_max();
}

// to[i] = from[i] widened to fp32, for i < n.
template <class V>
void widen_bf16(const bf16* from, std::int64_t n, float* to) {
  std::int64_t i = 0;
  for (; i + V::lanes <= n; i += V::lanes) V::load_bf16(from + i).store(to + i);
  for (; i < n; ++i) to[i] = static_cast<float>(from[i]);
}

// to[i] = scale · from[i]: an int8 cache's row as fp32, each product rounded once as the
// scalar expression rounds it.
template <class V>
void dequantize_int8(const std::int8_t* from, std::int64_t n, float scale, float* to) {
  const V step = V::broadcast(scale);
  std::int64_t i = 0;
  for (; i + V::lanes <= n; i += V::lanes) (V::load_int8(from + i) * step).store(to + i);
  for (; i < n; ++i) to[i] = scale * static_cast<float>(from[i]);
}

// Whether no element of the rows has an exponent of all ones (NaN, ±inf). A branch-free OR
// over the bits, which the compiler vectorizes on this target's registers.
template <class E>
bool all_finite(const E* x, std::int64_t rows, std::int64_t ld, std::int64_t cols) {
  using Bits = std::conditional_t<sizeof(E) == 4, std::uint32_t, std::uint16_t>;
  constexpr Bits kExponent = static_cast<Bits>(sizeof(E) == 4 ? 0x7f800000u : 0x7f80u);
  Bits nonfinite = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const E* row = x + r * ld;
    for (std::int64_t c = 0; c < cols; ++c) {
      Bits bits;
      std::memcpy(&bits, row + c, sizeof bits);
      nonfinite |= static_cast<Bits>((bits & kExponent) == kExponent);
    }
  }
  return nonfinite == 0;
}

template <class V>
void exp2_array(const float* x, float* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + V::lanes <= n; i += V::lanes) exp2(V::load(x + i)).store(y + i);
  for (; i < n; ++i) y[i] = exp2(VecF32<ScalarArch>::broadcast(x[i])).v;
}

// exp2_array with exp2_coarse_finite, whose lanes under 2^-126 the engine's flushed denormals
// make zeros (n a multiple of lanes).
template <class V>
void exp2_coarse_array(const float* x, float* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += V::lanes) exp2_coarse_finite(V::load(x + i)).store(y + i);
}

// elu(x) + 1 = max(e^min(x, 0), x + 1): e^x <= 1 <= x + 1 above zero and e^x >= x + 1 below
// (convexity), so one max picks the branch; max keeps its second operand's NaN.
template <class V>
void elu_plus_one(const float* x, float* y, std::int64_t n) {
  const V log2e = V::broadcast(1.4426950408889634f), zero = V::zero(), one = V::broadcast(1.0f);
  std::int64_t i = 0;
  for (; i + V::lanes <= n; i += V::lanes) {
    const V v = V::load(x + i);
    max(exp2(min(v, zero) * log2e), v + one).store(y + i);
  }
  for (; i < n; ++i) y[i] = x[i] > 0 ? x[i] + 1.0f : (x[i] <= 0 ? std::exp(x[i]) : x[i]);
}

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
