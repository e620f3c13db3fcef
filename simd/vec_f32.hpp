// One vector of fp32 lanes and the few operations the attention micro-kernels need.
//
// The kernels of simd/*-inl.hpp are written once against this interface.
// VecF32<A> wraps xsimd's batch for a SIMD architecture; VecF32<ScalarArch> is the one-lane
// fallback (xsimd 8 has no scalar batch). Everything here is inside the per-target namespace
// opened by the including translation unit, so no symbol is shared between targets compiled
// with different flags.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <utility>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "longattn/bf16.hpp"

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// 2^f on f ∈ [-0.5, 0.5]: degree-6 minimax fit of the relative error (max 1.6e-8, under
// one ulp), coefficients rounded to fp32. Fitted by Lawson-weighted least squares.
inline constexpr float kExp2Poly[7] = {1.0f,           0.6931471824645996f,  0.24022646248340607f,
                                       0.05550328642129898f,  0.009618489071726799f,
                                       0.0013399930903688073f, 0.0001534581242594868f};

// 2^f on f ∈ [0, 1) for the AVX-512 path, whose vreduceps yields x - floor(x): degree-5
// minimax fit of the absolute error (0.99 ulp: every value lies in [1, 2), one ulp wide),
// p(0) = 1 exactly, fitted like kExp2Poly; then the fp32 coefficients nudged by a few ulp
// where that lowered the error of fp32 Horner steps, in an emulation of them over every
// fp32 f in [0, 1) (1.92 ulp as the exp2 test measures it). Degree 6 (1.04 ulp) takes one
// more FMA per 16 scores where the exp2 pass is bound by the vector ports (bench/TUNING.md
// "exp2").
inline constexpr float kExp2UnitPoly[6] = {1.0f,
                                           0.6931524276733398f,
                                           0.24015285074710846f,
                                           0.055835921317338943f,
                                           0.008973399177193642f,
                                           0.0018852828070521355f};

// 2^f on f ∈ [0, 1), degree 3: 8.6e-5 relative error (minimax, fitted like kExp2UnitPoly),
// for probabilities that are rounded to bf16 (2^-9) next, as the int8 scores' are: two FMAs
// fewer per 16 scores than kExp2UnitPoly.
inline constexpr float kExp2CoarsePoly[4] = {1.0f, 0.6951165199279785f, 0.2276461124420166f, 0.07706601917743683f};

// Below these inputs exp2 returns exact zeros: -inf, the score of a masked key, becomes 0
// without a NaN on the way, and results under 2^-126 (an absolute error under 1e-38 against
// a softmax sum of at least 1) are never denormals. Building 2^n from exponent bits, inputs
// are clamped to -127, where n = -127 is the pattern of +0. With scalef (AVX-512) a lane
// mask zeroes inputs below -126.
inline constexpr float kExp2MinBits = -127.0f;
inline constexpr float kExp2MinScalef = -126.0f;

// exp2_finite's inputs from here up give +inf (2^128 from exponent bits; scalef overflows by
// itself). A lazy tile (scores against a stale row max) relies on it: its overflow check
// must see a sum over the limit, where the exponent bits of n > 128 wrapped around to
// small or negative numbers (AVX2 and scalar attention were wrong for a score 89 above
// every earlier one in its row).
inline constexpr float kExp2Overflow = 128.0f;

struct ScalarArch {};

#if defined(__AVX512VNNI__)
// acc + Σ_t a_t · b_t in int32 lane i over its 4 bytes t, a's read unsigned and b's signed
// (vpdpbusd). In assembly: GCC 12 routes each intrinsic's accumulator through one scratch
// register with two moves (bench/TUNING.md "int8 scores").
inline __m512i dot_u8_s8(__m512i acc, __m512i a, __m512i b) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
  return acc;
}
#endif

template <class Arch>
struct VecF32 {
  using batch = xsimd::batch<float, Arch>;
  static constexpr int lanes = static_cast<int>(batch::size);
  batch v;

  static VecF32 load(const float* p) { return {batch::load_unaligned(p)}; }
  // `lanes` bf16 values (the upper halves of fp32 bit patterns) widened to fp32: exact.
  static VecF32 load_bf16(const bf16* p) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
      return {batch(_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)))};
    }
#endif
#if defined(__AVX2__)
    if constexpr (lanes == 8) {
      const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
      return {batch(_mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)))};
    }
#endif
    alignas(64) float widened[lanes];
    for (int i = 0; i < lanes; ++i) widened[i] = static_cast<float>(p[i]);
    return {batch::load_aligned(widened)};
  }
  // `lanes` int8 values as fp32: exact.
  static VecF32 load_int8(const std::int8_t* p) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      return {batch(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)))};
    }
#endif
#if defined(__AVX2__)
    if constexpr (lanes == 8) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
      return {batch(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)))};
    }
#endif
    alignas(64) float widened[lanes];
    for (int i = 0; i < lanes; ++i) widened[i] = static_cast<float>(p[i]);
    return {batch::load_aligned(widened)};
  }
  // Lane i holds the pair (even[i], odd[i]) of bf16, even[i] in the low half (odd null:
  // zeros): rows of bf16 interleaved as the bf16 products read them. Bits, not numbers.
  static VecF32 pair_bf16(const bf16* even, const bf16* odd) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      const __m512i low = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(even)));
      const __m512i high =
          odd == nullptr
              ? _mm512_setzero_si512()
              : _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(odd))), 16);
      return {batch(_mm512_castsi512_ps(_mm512_or_si512(low, high)))};
    }
#endif
    alignas(64) std::uint32_t pairs[lanes];
    for (int i = 0; i < lanes; ++i) pairs[i] = even[i].bits | (odd == nullptr ? 0u : std::uint32_t{odd[i].bits} << 16);
    alignas(64) float bits[lanes];
    std::memcpy(bits, pairs, sizeof(bits));
    return {batch::load_aligned(bits)};
  }
  static VecF32 broadcast(float x) { return {batch(x)}; }
  static VecF32 zero() { return {batch(0.0f)}; }
  void store(float* p) const { v.store_unaligned(p); }
  // A store that bypasses the caches (p aligned to the vector): for output written once.
  void stream(float* p) const {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      _mm512_stream_ps(p, v);
      return;
    }
#endif
#if defined(__AVX__)
    if constexpr (lanes == 8) {
      _mm256_stream_ps(p, v);
      return;
    }
#endif
    v.store_aligned(p);
  }
  // Orders the streamed stores before what follows (they are weakly ordered).
  static void stream_fence() {
#if defined(__AVX__)
    _mm_sfence();
#endif
  }

  // a·b + c rounded once, for exp2's polynomial: xsimd 8.1 has no AVX-512 fma, and its
  // generic a·b + c is fused only where the compiler contracts it (the sanitizer build did
  // not, and exp2 lost accuracy). The micro-kernels keep xsimd's, which the compiler
  // schedules better in the register blocks (bench/TUNING.md "exp2").
  static batch fused(batch a, batch b, batch c) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) return _mm512_fmadd_ps(a, b, c);
#endif
#if defined(__FMA__)
    if constexpr (lanes == 8) return _mm256_fmadd_ps(a, b, c);
#endif
    return xsimd::fma(a, b, c);
  }

#if defined(__AVX512F__)
  // 2^(x - floor x), the part of AVX-512 exp2 that scalef then multiplies by 2^floor(x).
  // kCoarse: kExp2CoarsePoly's.
  template <bool kCoarse = false>
  static batch exp2_of_fraction(batch x) {
    const batch f = _mm512_reduce_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    constexpr const float* poly = kCoarse ? kExp2CoarsePoly : kExp2UnitPoly;
    constexpr int degree = kCoarse ? 3 : 5;
    batch p(poly[degree]);
    for (int i = degree - 1; i >= 0; --i) p = fused(p, f, batch(poly[i]));
    return p;
  }
#endif

  // The same value, which the compiler must now hold in a register: for a loaded vector that
  // several FMAs use, GCC otherwise folds the load into each of them (one load per FMA).
  VecF32 in_register() const {
    typename batch::register_type raw = v;
#if defined(__AVX512F__)
    if constexpr (lanes == 16) asm("" : "+v"(raw));
#endif
#if defined(__AVX__)
    if constexpr (lanes == 8) asm("" : "+x"(raw));
#endif
    return {batch(raw)};
  }

  friend VecF32 fma(VecF32 a, VecF32 b, VecF32 c) { return {xsimd::fma(a.v, b.v, c.v)}; }
#if defined(__AVX512BF16__)
  // acc + a[2i]·b[2i] + a[2i+1]·b[2i+1] in lane i, where a and b hold bf16 pairs (the low
  // half of each 32 bits first): AVX512-BF16 vdpbf16ps, exact products summed in fp32 (with
  // round to nearest even and denormals flushed, whatever MXCSR says).
  friend VecF32 dot_bf16_pairs(VecF32 acc, VecF32 a, VecF32 b) {
    static_assert(lanes == 16);
    return {batch(_mm512_dpbf16_ps(acc.v, (__m512bh)_mm512_castps_si512(a.v), (__m512bh)_mm512_castps_si512(b.v)))};
  }
  // The `lanes` values rounded to bf16 (nearest even), stored as `lanes` bf16 at p.
  void store_bf16(bf16* p) const {
    static_assert(lanes == 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v));
  }
  // pair_bf16 of fp32 rows, each value rounded to bf16 (nearest even) on the way.
  static VecF32 pair_rounded(const float* even, const float* odd) {
    static_assert(lanes == 16);
    const __m512i low = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(even)));
    const __m512i high =
        odd == nullptr ? _mm512_setzero_si512()
                       : _mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(odd))), 16);
    return {batch(_mm512_castsi512_ps(_mm512_or_si512(low, high)))};
  }
#endif
#if defined(__AVX512VNNI__)
  // acc + Σ_t a_t · b_t in lane i over its 4 bytes t, a's read unsigned and b's signed, summed
  // in int32 (vpdpbusd, dot_u8_s8): acc and the result hold int32 bit patterns, not floats.
  friend VecF32 dot_u8_s8_quads(VecF32 acc, VecF32 a, VecF32 b) {
    static_assert(lanes == 16);
    return {batch(_mm512_castsi512_ps(dot_u8_s8(_mm512_castps_si512(acc.v), _mm512_castps_si512(a.v),
                                                  _mm512_castps_si512(b.v))))};
  }
  // The int32 each lane's bits hold, as fp32 (exact under 2^24 in magnitude).
  friend VecF32 int32_bits_to_float(VecF32 x) { return {batch(_mm512_cvtepi32_ps(_mm512_castps_si512(x.v)))}; }
  // Each lane rounded to an integer (ties to even), saturated to int8, stored as `lanes`
  // bytes at p, each xor'd with `flip` (0x80: as unsigned, offset by 128).
  void store_int8(std::int8_t* p, std::int8_t flip) const {
    static_assert(lanes == 16);
    const __m128i bytes = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_xor_si128(bytes, _mm_set1_epi8(flip)));
  }
#endif
  friend VecF32 operator*(VecF32 a, VecF32 b) { return {a.v * b.v}; }
  friend VecF32 operator-(VecF32 a, VecF32 b) { return {a.v - b.v}; }
  friend VecF32 operator+(VecF32 a, VecF32 b) { return {a.v + b.v}; }
  // x86's rule on every target: where either lane is NaN, b's lane. A NaN that must survive
  // (README "Non-finite values") goes in b.
  friend VecF32 max(VecF32 a, VecF32 b) { return {xsimd::max(a.v, b.v)}; }
  friend VecF32 min(VecF32 a, VecF32 b) { return {xsimd::min(a.v, b.v)}; }
  friend VecF32 operator/(VecF32 a, VecF32 b) { return {a.v / b.v}; }

  // 1 / d for d >= 1 (finite or +inf, which gives 0): the 14-bit reciprocal estimate refined
  // by one Newton step, a relative error near 2^-28 before the last rounding; vdivps on 16
  // lanes holds its port for ~10 cycles (bench/TUNING.md "Sigmoid's reciprocal").
  friend VecF32 reciprocal_at_least_one(VecF32 d) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      const batch r = _mm512_rcp14_ps(d.v);
      const batch refined = xsimd::fma(r, xsimd::fnma(d.v, r, batch(1.0f)), r);
      // Not +inf (unordered: a NaN keeps its NaN estimate).
      const __mmask16 finite = _mm512_cmp_ps_mask(d.v, batch(std::numeric_limits<float>::infinity()), _CMP_NEQ_UQ);
      return {batch(_mm512_maskz_mov_ps(finite, refined))};
    }
#endif
    return {batch(1.0f) / d.v};
  }

  // 1 / d for finite d >= 1: reciprocal_at_least_one without its +inf lanes.
  friend VecF32 reciprocal_of_finite_at_least_one(VecF32 d) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      const batch r = _mm512_rcp14_ps(d.v);
      return {xsimd::fma(r, xsimd::fnma(d.v, r, batch(1.0f)), r)};
    }
#endif
    return {batch(1.0f) / d.v};
  }

  // Halving the vector, as reduce_max does: with xsimd's hadd (vhaddps, three uops each) the
  // row sums held up the unrolled AVX-512 exp2 pass (1.59 -> 1.49 ns per vector without it).
  float reduce_add() const {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) return _mm512_reduce_add_ps(v);
#endif
#if defined(__AVX__)
    if constexpr (lanes == 8) {
      __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
      s = _mm_add_ps(s, _mm_movehl_ps(s, s));
      s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
      return _mm_cvtss_f32(s);
    }
#endif
    return xsimd::hadd(v);
  }
  float reduce_max() const {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) return _mm512_reduce_max_ps(v);
#endif
#if defined(__AVX__)
    if constexpr (lanes == 8) {
      // Halve the vector three times rather than round-trip through memory (bench/TUNING.md
      // "exp2").
      __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
      m = _mm_max_ps(m, _mm_movehl_ps(m, m));
      m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
      return _mm_cvtss_f32(m);
    }
#endif
    alignas(64) float tmp[lanes];
    v.store_aligned(tmp);
    return *std::max_element(tmp, tmp + lanes);
  }

  // Lane i of the result is the sum of x[i]'s lanes, for `lanes` vectors x: many dot
  // products finished at once.
  static VecF32 sum_lanes(const VecF32* x) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      // Added as they are interleaved, halving the vectors at each step (30 shuffles and 15
      // adds, where a transpose and then the sums take 64 and 15).
      __m512 h[8], q[4], w[2];
      for (int i = 0; i < 8; ++i) {  // each 128-bit lane of h[i]: x[2i], x[2i+1], x[2i], x[2i+1]
        h[i] = _mm512_add_ps(_mm512_unpacklo_ps(x[2 * i].v, x[2 * i + 1].v),
                             _mm512_unpackhi_ps(x[2 * i].v, x[2 * i + 1].v));
      }
      for (int i = 0; i < 4; ++i) {  // each 128-bit lane of q[i]: x[4i .. 4i+3]
        const __m512d a = _mm512_castps_pd(h[2 * i]), b = _mm512_castps_pd(h[2 * i + 1]);
        q[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
      }
      for (int i = 0; i < 2; ++i) {  // 128-bit lanes 0, 1 of w[i]: x[8i .. 8i+3]; 2, 3: x[8i+4 .. 8i+7]
        w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(q[2 * i], q[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(q[2 * i], q[2 * i + 1], 0xee));
      }
      return {batch(_mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88), _mm512_shuffle_f32x4(w[0], w[1], 0xdd)))};
    }
#endif
#if defined(__AVX__)
    if constexpr (lanes == 8) {
      // Pairs added within 128-bit halves twice: the low half of h0123 holds the low-half
      // sums of x[0..3], its high half their high-half sums.
      const __m256 h01 = _mm256_hadd_ps(x[0].v, x[1].v), h23 = _mm256_hadd_ps(x[2].v, x[3].v);
      const __m256 h45 = _mm256_hadd_ps(x[4].v, x[5].v), h67 = _mm256_hadd_ps(x[6].v, x[7].v);
      const __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
      return {batch(_mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20),
                                  _mm256_permute2f128_ps(h0123, h4567, 0x31)))};
    }
#endif
    VecF32 t[lanes];
    std::copy_n(x, lanes, t);
    transpose(t);
    VecF32 sum = t[0];
    for (int i = 1; i < lanes; ++i) sum = sum + t[i];
    return sum;
  }

  // rows[i][j] <-> rows[j][i] for a lanes × lanes block held in registers.
  static void transpose(VecF32* rows) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      __m512 r[16], t[16];
      for (int i = 0; i < 16; ++i) r[i] = rows[i].v;
      // Pairs of rows interleaved, then pairs of pairs: each 128-bit lane of r[4g + c] holds
      // column 4·lane + c of rows 4g .. 4g + 3.
      for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int g = 0; g < 16; g += 4) {
        const __m512d a = _mm512_castps_pd(t[g]), b = _mm512_castps_pd(t[g + 1]);
        const __m512d c = _mm512_castps_pd(t[g + 2]), d = _mm512_castps_pd(t[g + 3]);
        r[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
      }
      // Then whole 128-bit lanes move: even lanes of rows 0-7 with those of 8-15, odd likewise.
      for (int c = 0; c < 4; ++c) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[c + 4], 0x88);
        t[c + 4] = _mm512_shuffle_f32x4(r[c], r[c + 4], 0xdd);
        t[c + 8] = _mm512_shuffle_f32x4(r[c + 8], r[c + 12], 0x88);
        t[c + 12] = _mm512_shuffle_f32x4(r[c + 8], r[c + 12], 0xdd);
      }
      for (int c = 0; c < 8; ++c) {
        rows[c].v = _mm512_shuffle_f32x4(t[c], t[c + 8], 0x88);
        rows[c + 8].v = _mm512_shuffle_f32x4(t[c], t[c + 8], 0xdd);
      }
      return;
    }
#endif
#if defined(__AVX__)
    if constexpr (lanes == 8) {
      __m256 t[8], u[8];
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(rows[i].v, rows[i + 1].v);
        t[i + 1] = _mm256_unpackhi_ps(rows[i].v, rows[i + 1].v);
      }
      for (int g = 0; g < 8; g += 4) {
        u[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xee);
        u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xee);
      }
      for (int c = 0; c < 4; ++c) {
        rows[c].v = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
        rows[c + 4].v = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
      }
      return;
    }
#endif
    alignas(64) float block[lanes][lanes];
    for (int i = 0; i < lanes; ++i) rows[i].v.store_aligned(block[i]);
    for (int i = 0; i < lanes; ++i)
      for (int j = 0; j < i; ++j) std::swap(block[i][j], block[j][i]);
    for (int i = 0; i < lanes; ++i) rows[i].v = batch::load_aligned(block[i]);
  }

  // exp2 for finite x with denormals flushed (MXCSR FTZ, as the engine's tasks run), +inf
  // from kExp2Overflow on, NaN for NaN: on AVX-512 without the lane mask, scalef's underflow
  // giving the zeros; the other targets clamp both ends (bench/TUNING.md "exp2").
  friend VecF32 exp2_finite(VecF32 x) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) return {batch(_mm512_scalef_ps(exp2_of_fraction(x.v), x.v))};
#endif
    return exp2(VecF32{xsimd::min(batch(kExp2Overflow), x.v)});
  }

  // exp2_finite on the lanes whose bit is set in `keep` (lane i: bit i), 0 on the others
  // whatever they hold: a row's visible keys within a vector of scores.
  friend VecF32 exp2_finite_masked(VecF32 x, std::uint32_t keep) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      return {batch(_mm512_maskz_scalef_ps(static_cast<__mmask16>(keep), exp2_of_fraction(x.v), x.v))};
    }
#endif
    using ibatch = xsimd::batch<std::int32_t, Arch>;
    alignas(64) static constexpr std::int32_t kLaneBit[16] = {1 << 0, 1 << 1, 1 << 2,  1 << 3,  1 << 4,  1 << 5,
                                                              1 << 6, 1 << 7, 1 << 8,  1 << 9,  1 << 10, 1 << 11,
                                                              1 << 12, 1 << 13, 1 << 14, 1 << 15};
    const auto kept = (ibatch(static_cast<std::int32_t>(keep)) & ibatch::load_aligned(kLaneBit)) != ibatch(0);
    return {xsimd::select(xsimd::bool_cast(kept), exp2_finite(x).v, batch(0.0f))};
  }

  // exp2_finite and exp2_finite_masked to kExp2CoarsePoly's error on AVX-512 (exactly
  // them elsewhere): for probabilities rounded to bf16 next.
  friend VecF32 exp2_coarse_finite(VecF32 x) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) return {batch(_mm512_scalef_ps(exp2_of_fraction<true>(x.v), x.v))};
#endif
    return exp2_finite(x);
  }
  friend VecF32 exp2_coarse_finite_masked(VecF32 x, std::uint32_t keep) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      return {batch(_mm512_maskz_scalef_ps(static_cast<__mmask16>(keep), exp2_of_fraction<true>(x.v), x.v))};
    }
#endif
    return exp2_finite_masked(x, keep);
  }

  // 2^x for x <= 0 (scores minus their row max), relative error <= 2 ulp; NaN for NaN, so a
  // NaN score reaches the row's sum and output.
  friend VecF32 exp2(VecF32 x) {
#if defined(__AVX512F__)
    if constexpr (lanes == 16) {
      // f = x - floor(x) in one vreduceps, p = 2^f on [0, 1), then scalef multiplies by
      // 2^floor(x) itself: 9 instructions where round, subtract and clamp took 11.
      // Lanes below -126 (masked scores are -inf) are zeroed by the mask, never computed:
      // letting scalef underflow to 0 or to a denormal costs a microcode assist per lane on
      // Intel cores (bench/TUNING.md "exp2").
      const __mmask16 normal = _mm512_cmp_ps_mask(x.v, batch(kExp2MinScalef), _CMP_NLT_UQ);  // NaN computed
      return {batch(_mm512_maskz_scalef_ps(normal, exp2_of_fraction(x.v), x.v))};
    }
#endif
    const batch c = xsimd::max(batch(kExp2MinBits), x.v);  // a NaN stays, and p is NaN
    const batch n = xsimd::nearbyint(c);
    const batch f = c - n;
    batch p(kExp2Poly[6]);
    for (int i = 5; i >= 0; --i) p = fused(p, f, batch(kExp2Poly[i]));
    using ibatch = xsimd::batch<std::int32_t, Arch>;
    const ibatch bits = (xsimd::nearbyint_as_int(n) + ibatch(127)) << 23;
    return {p * xsimd::bitwise_cast<batch>(bits)};
  }
};

template <>
struct VecF32<ScalarArch> {
  static constexpr int lanes = 1;
  float v;

  static VecF32 load(const float* p) { return {*p}; }
  static VecF32 load_bf16(const bf16* p) { return {static_cast<float>(*p)}; }
  static VecF32 load_int8(const std::int8_t* p) { return {static_cast<float>(*p)}; }
  static VecF32 broadcast(float x) { return {x}; }
  static VecF32 zero() { return {0.0f}; }
  void store(float* p) const { *p = v; }
  void stream(float* p) const { *p = v; }
  static void stream_fence() {}

  // a·b + c, not std::fma: that is a slow library call on CPUs without FMA, this target's users.
  friend VecF32 fma(VecF32 a, VecF32 b, VecF32 c) { return {a.v * b.v + c.v}; }
  friend VecF32 operator*(VecF32 a, VecF32 b) { return {a.v * b.v}; }
  friend VecF32 operator-(VecF32 a, VecF32 b) { return {a.v - b.v}; }
  friend VecF32 operator+(VecF32 a, VecF32 b) { return {a.v + b.v}; }
  // The vector targets' rule: b where either is NaN.
  friend VecF32 max(VecF32 a, VecF32 b) { return {a.v > b.v ? a.v : b.v}; }
  friend VecF32 min(VecF32 a, VecF32 b) { return {a.v < b.v ? a.v : b.v}; }
  friend VecF32 operator/(VecF32 a, VecF32 b) { return {a.v / b.v}; }
  friend VecF32 reciprocal_at_least_one(VecF32 d) { return {1.0f / d.v}; }
  friend VecF32 reciprocal_of_finite_at_least_one(VecF32 d) { return {1.0f / d.v}; }
  float reduce_add() const { return v; }
  float reduce_max() const { return v; }
  static VecF32 sum_lanes(const VecF32* x) { return x[0]; }
  VecF32 in_register() const { return *this; }
  static void transpose(VecF32*) {}

  friend VecF32 exp2(VecF32 x) {
    if (std::isnan(x.v)) return x;
    float c = std::max(x.v, kExp2MinBits);
    float n = std::nearbyint(c);
    float f = c - n;
    float p = kExp2Poly[6];
    for (int i = 5; i >= 0; --i) p = p * f + kExp2Poly[i];
    std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return {p * scale};
  }
  friend VecF32 exp2_finite(VecF32 x) { return exp2(min(VecF32{kExp2Overflow}, x)); }
  friend VecF32 exp2_finite_masked(VecF32 x, std::uint32_t keep) { return (keep & 1) ? exp2_finite(x) : VecF32{0.0f}; }
  friend VecF32 exp2_coarse_finite(VecF32 x) { return exp2_finite(x); }
  friend VecF32 exp2_coarse_finite_masked(VecF32 x, std::uint32_t keep) { return exp2_finite_masked(x, keep); }
};

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
