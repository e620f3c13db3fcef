// The int8 scores (QkPrecision::int8, after SageAttention): rows quantized symmetrically with
// a scale each, key panels of unsigned quads with their scales, and QKᵀ on the quads by the
// register blocks of gemm_block (Operands::int8_quads).
// Part of the kernels one target compiles (simd/kernel_table-inl.hpp): included once per
// target translation unit, inside that target's namespace.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "simd/gemm_block-inl.hpp"
#include "simd/packing_kernels-inl.hpp"
#include "simd/row_kernels-inl.hpp"
#include "simd/tile_kernels-inl.hpp"

namespace longattn::simd::LONGATTN_SIMD_TARGET {

#if defined(__AVX512VNNI__)

template <class V, int R, int NV>
void qk_scores_int8(const std::int8_t* q, std::int64_t rows, std::int64_t quads, const std::uint8_t* key_panels,
                    std::int64_t first_key, std::int64_t keys, float* s, std::int64_t lds, ScoreTerms terms,
                    float* row_max, PrefetchQueue& prefetch) {
  qk_tile_of<V, R, NV, Operands::int8_quads, false>(reinterpret_cast<const float*>(q), rows, quads,
                                                    reinterpret_cast<const float*>(key_panels), first_key, keys, s,
                                                    lds, nullptr, terms, row_max, prefetch, 1.0f);
}

template <class V, int R, int NV>
void qk_probabilities_int8(const std::int8_t* q, std::int64_t rows, std::int64_t quads,
                           const std::uint8_t* key_panels, std::int64_t first_key, std::int64_t keys, float* s,
                           std::int64_t lds, const float* row_shift, ScoreTerms terms, float* row_sum,
                           PrefetchQueue& prefetch) {
  qk_tile_of<V, R, NV, Operands::int8_quads, true>(reinterpret_cast<const float*>(q), rows, quads,
                                                   reinterpret_cast<const float*>(key_panels), first_key, keys, s,
                                                   lds, row_shift, terms, row_sum, prefetch, 1.0f);
}

// x[i] - mean[i] (mean null: x[i]) for the `lanes` features from i.
template <class V>
V deviation_at(const float* x, const float* mean, std::int64_t i) {
  return mean == nullptr ? V::load(x + i) : V::load(x + i) - V::load(mean + i);
}

// max |x[i] - mean[i]| over i < d; NaN where a deviation is NaN (their sum keeps it, where
// max would drop it).
template <class V>
float largest_deviation(const float* x, const float* mean, std::int64_t d) {
  constexpr int L = V::lanes;
  V largest = V::zero(), total = V::zero();
  std::int64_t i = 0;
  for (; i + L <= d; i += L) {
    const V deviation{xsimd::abs(deviation_at<V>(x, mean, i).v)};
    largest = max(largest, deviation);
    total = total + deviation;
  }
  float result = largest.reduce_max(), sum = total.reduce_add();
  for (; i < d; ++i) {
    const float deviation = std::fabs(x[i] - (mean == nullptr ? 0.0f : mean[i]));
    result = deviation > result ? deviation : result;
    sum += deviation;
  }
  return std::isnan(sum) ? sum : result;
}

template <class V>
void quantize_rows(const float* rows, std::int64_t stride, std::int64_t count, std::int64_t d, const float* mean,
                   std::int8_t flip, std::int8_t* out, std::int64_t ldo, float* scales) {
  constexpr int L = V::lanes;
  const std::int64_t padded = 4 * int8_quads(d);
  for (std::int64_t r = 0; r < count; ++r) {
    const float* x = rows + r * stride;
    std::int8_t* q = out + r * ldo;
    const float largest = largest_deviation<V>(x, mean, d);
    scales[r] = largest / 127.0f;
    // A zero row quantizes to zeros; a non-finite one to anything: its scale carries it.
    const float inverse = largest > 0.0f && std::isfinite(largest) ? 127.0f / largest : 0.0f;
    const V factor = V::broadcast(inverse);
    std::int64_t i = 0;
    for (; i + L <= d; i += L) (deviation_at<V>(x, mean, i) * factor).store_int8(q + i, flip);
    for (; i < padded; ++i) {
      const float scaled = i < d ? (x[i] - (mean == nullptr ? 0.0f : mean[i])) * inverse : 0.0f;
      const long rounded = std::isfinite(scaled) ? std::lrint(scaled) : 0;
      const auto value = static_cast<std::int8_t>(rounded < -128 ? -128 : rounded > 127 ? 127 : rounded);
      q[i] = static_cast<std::int8_t>(value ^ flip);
    }
  }
}

template <class V, int NV>
void pack_int8_key_panel(const float* keys, std::int64_t stride, std::int64_t count, std::int64_t d,
                         const float* mean, std::uint8_t* panel, bool streamed) {
  constexpr int P = NV * V::lanes;
  const std::int64_t quads = int8_quads(d);
  // The keys quantized into rows of quads units, then transposed like fp32 features; staged
  // on the stack up to D = 256.
  constexpr std::int64_t kStackQuads = 64;
  alignas(64) std::int8_t on_stack[P * 4 * kStackQuads];
  std::vector<std::int8_t> on_heap(quads <= kStackQuads ? 0 : static_cast<std::size_t>(P * 4 * quads));
  std::int8_t* staged = quads <= kStackQuads ? on_stack : on_heap.data();
  alignas(64) float key_scales[P] = {};
  quantize_rows<V>(keys, stride, count, d, mean, static_cast<std::int8_t>(0x80), staged, 4 * quads, key_scales);
  float* units = reinterpret_cast<float*>(panel);
  pack_key_panel<V, NV, false>(reinterpret_cast<const float*>(staged), quads, count, quads, 1.0f, units, streamed);
  for (int v = 0; v < NV; ++v) V::load(key_scales + v * V::lanes).store(units + quads * P + v * V::lanes);
}

// Keys whose R · K (at most 16) dot products one sum_lanes finishes in qk_rows_quantized;
// rows are stored 4 apart, a missing row's lanes zero.
inline constexpr int kQuantizedRowKeys = 4;

// A quantized query row's start (-128 · Σ q) in lane 0 alone: sum_lanes adds every lane.
inline __m512i quantized_row_start(const std::int8_t* row, std::int64_t d) {
  std::int32_t start;
  std::memcpy(&start, row + 4 * int8_quads(d), sizeof(start));
  return _mm512_maskz_set1_epi32(1, start);
}

// The dot products of keys [c, c + n) (n <= kQuantizedRowKeys) against R int8 query rows, as
// fp32 lanes totals[r · 4 + k] to sum: per 64 features a vpdpbusd per row and key, the keys
// read unsigned (xor 0x80 adds 128 in registers), each sum started at its row's start.
template <class V, int R>
[[gnu::always_inline]] inline void quantized_dot_lanes(const std::int8_t* q, std::int64_t ldq, std::int64_t d,
                                                       const std::int8_t* keys, std::int64_t ldk, int n, V* totals) {
  constexpr int K = kQuantizedRowKeys;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const std::int64_t chunks = (d + 63) / 64;
  const __mmask64 tail = d % 64 == 0 ? ~__mmask64{0} : (__mmask64{1} << (d % 64)) - 1;
  auto load = [&](const std::int8_t* p, std::int64_t chunk) {  // zeros past d
    return _mm512_maskz_loadu_epi8(chunk + 1 < chunks ? ~__mmask64{0} : tail, p + 64 * chunk);
  };
  __m512i acc[K][R];
  LONGATTN_UNROLL_ROWS for (int r = 0; r < R; ++r) {
    const __m512i start = quantized_row_start(q + r * ldq, d);
    LONGATTN_UNROLL_ROWS for (int k = 0; k < K; ++k) acc[k][r] = start;
  }
  for (std::int64_t chunk = 0; chunk < chunks; ++chunk) {
    __m512i x[K];
    LONGATTN_UNROLL_ROWS for (int k = 0; k < K; ++k) {
      x[k] = k < n ? _mm512_xor_si512(load(keys + k * ldk, chunk), flip) : flip;
    }
    LONGATTN_UNROLL_ROWS for (int r = 0; r < R; ++r) {
      const __m512i a = load(q + r * ldq, chunk);
      LONGATTN_UNROLL_ROWS for (int k = 0; k < K; ++k) acc[k][r] = dot_u8_s8(acc[k][r], x[k], a);
    }
  }
  LONGATTN_UNROLL_ROWS for (int r = 0; r < 4; ++r) {
    LONGATTN_UNROLL_ROWS for (int k = 0; k < K; ++k) {
      totals[r * K + k] = r < R ? V{typename V::batch(_mm512_cvtepi32_ps(acc[k][r]))} : V::zero();
    }
  }
}

template <class V, int R>
void qk_rows_quantized_pass(const std::int8_t* q, std::int64_t ldq, std::int64_t d, const std::int8_t* keys,
                            std::int64_t ldk, const float* key_scales, std::int64_t count, float* s, std::int64_t lds) {
  constexpr int K = kQuantizedRowKeys;
  const std::int64_t ahead = rows_ahead<V>(d);
  alignas(64) float factors[16] = {};  // row r's factor at lanes [r · K, r · K + K)
  for (int r = 0; r < R; ++r) {
    std::memcpy(&factors[r * K], q + r * ldq + 4 * (int8_quads(d) + 1), sizeof(float));
    std::fill_n(&factors[r * K + 1], K - 1, factors[r * K]);
  }
  const V row_factors = V::load(factors);
  for (std::int64_t c = 0; c < count; c += K) {
    const int n = static_cast<int>(std::min<std::int64_t>(K, count - c));
    for (int k = 0; k < n; ++k) prefetch_row<V>(keys + (c + k + ahead) * ldk, d);
    V totals[16];
    quantized_dot_lanes<V, R>(q, ldq, d, keys + c * ldk, ldk, n, totals);
    alignas(64) float dots[16];
    if (n < K) {  // the last keys
      V::sum_lanes(totals).store(dots);
      for (int r = 0; r < R; ++r) {
        for (int k = 0; k < n; ++k) s[r * lds + c + k] = dots[r * K + k] * factors[r * K] * key_scales[c + k];
      }
      continue;
    }
    // Each row's K products scaled as one vector and stored as one run of s.
    alignas(64) float scales[16];
    for (int r = 0; r < 4; ++r) std::memcpy(&scales[r * K], key_scales + c, K * sizeof(float));
    (V::sum_lanes(totals) * row_factors * V::load(scales)).store(dots);
    for (int r = 0; r < R; ++r) std::memcpy(s + r * lds + c, &dots[r * K], K * sizeof(float));
  }
}

template <class V>
void qk_rows_quantized(const std::int8_t* q, std::int64_t rows, std::int64_t d, const std::int8_t* keys,
                       std::int64_t ldk, const float* key_scales, std::int64_t count, float* s, std::int64_t lds) {
  const std::int64_t ldq = 4 * int8_query_units(d);
  for (std::int64_t r0 = 0; r0 < rows; r0 += 4) {
    const std::int8_t* q0 = q + r0 * ldq;
    float* s0 = s + r0 * lds;
    switch (std::min<std::int64_t>(4, rows - r0)) {
      case 1: qk_rows_quantized_pass<V, 1>(q0, ldq, d, keys, ldk, key_scales, count, s0, lds); break;
      case 2: qk_rows_quantized_pass<V, 2>(q0, ldq, d, keys, ldk, key_scales, count, s0, lds); break;
      case 3: qk_rows_quantized_pass<V, 3>(q0, ldq, d, keys, ldk, key_scales, count, s0, lds); break;
      default: qk_rows_quantized_pass<V, 4>(q0, ldq, d, keys, ldk, key_scales, count, s0, lds); break;
    }
  }
}

template <class V, int R, int NV>
Int8DotKernels make_int8_dot_kernels() {
  return Int8DotKernels{
      .probabilities_in_bf16 = kInt8ProbabilitiesInBf16,
      .qk_scores = &qk_scores_int8<V, R, NV>,
      .qk_probabilities = &qk_probabilities_int8<V, R, NV>,
      .quantize_rows = &quantize_rows<V>,
      .pack_key_panel = &pack_int8_key_panel<V, NV>,
      .qk_rows = &qk_rows_quantized<V>,
#if defined(__AVX512BF16__)
      .pack_value_pairs = &pack_value_pairs<V, float>,
#else
      .pack_value_pairs = nullptr,
#endif
  };
}

#endif

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
