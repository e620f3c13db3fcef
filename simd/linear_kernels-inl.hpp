// Linear attention's kernels: the running D × Dv state updated by one key, and a query's
// product with it.
// Part of the kernels one target compiles (simd/kernel_table-inl.hpp): included once per
// target translation unit, inside that target's namespace.
#pragma once

#include <cstdint>

#include "simd/vec_f32.hpp"

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// S[i][:] += a[i] · b[:] over d rows of dv_padded floats: one key's φ(k) vᵀ in linear
// attention's state.
template <class V>
void rank1_update(float* state, std::int64_t d, std::int64_t dv_padded, const float* a, const float* b) {
  for (std::int64_t i = 0; i < d; ++i) {
    const V ai = V::broadcast(a[i]);
    float* row = state + i * dv_padded;
    for (std::int64_t c = 0; c < dv_padded; c += V::lanes) fma(ai, V::load(b + c), V::load(row + c)).store(row + c);
  }
}

// out[:] = Σ_i x[i] · S[i][:] over d rows of dv_padded floats: φ(q)ᵀ S.
template <class V>
void vector_matrix(const float* x, const float* state, std::int64_t d, std::int64_t dv_padded, float* out) {
  for (std::int64_t c = 0; c < dv_padded; c += V::lanes) {
    V acc = V::zero();
    for (std::int64_t i = 0; i < d; ++i) acc = fma(V::broadcast(x[i]), V::load(state + i * dv_padded + c), acc);
    acc.store(out + c);
  }
}

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
