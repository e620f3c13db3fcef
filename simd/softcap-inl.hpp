// Soft-capping (Gemma 2): x -> cap · tanh(x / cap), for the QKᵀ kernels' epilogue and the
// element-wise pass alike. Part of the kernels one target compiles (simd/kernel_table-inl.hpp):
// included once per target translation unit, inside that target's namespace.
#pragma once

#include "simd/kernel_table.hpp"
#include "simd/vec_f32.hpp"

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// cap · tanh(y) = 2 cap / (1 + e) - cap, e = 2^(-2y log2 e) with the exponent at most 126,
// where tanh is already -1 in float: 1 + e is finite and >= 1, so a refined reciprocal
// serves (no division). No lower clamp: exp2_finite takes -inf (from a score of +inf) to 0,
// so +inf gives cap and -inf gives -cap; NaN stays NaN. `scale` multiplies x first (folded
// into the exponent's factor).
template <class V>
struct SoftCap {
  V to_exponent, minus_cap, twice_cap, one = V::broadcast(1.0f), high = V::broadcast(126.0f);

  explicit SoftCap(float c, float scale = 1.0f)
      : to_exponent(V::broadcast(kSoftcapExponent * scale / c)), minus_cap(V::broadcast(-c)),
        twice_cap(V::broadcast(2 * c)) {}

  V operator()(V x) const { return plus(x, minus_cap); }

  // cap · tanh(scale · x / cap) + cap + base: a capped score and what joins it (its start
  // value and position bias, less cap) in one FMA.
  V plus(V x, V base) const { return plus_from_exponent(x * to_exponent, base); }

  // The same from the exponent u = kSoftcapExponent · scale · x / cap itself: products of keys
  // packed with its factor.
  V plus_from_exponent(V u, V base) const {
    const V e = exp2_finite(min(high, u));
    return fma(twice_cap, reciprocal_of_finite_at_least_one(one + e), base);
  }
};

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
