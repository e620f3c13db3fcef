// The probe of the machine's peak fp32 FMA rate on one target.
// Part of the kernels one target compiles (simd/kernel_table-inl.hpp): included once per
// target translation unit, inside that target's namespace.
#pragma once

#include <cstdint>

namespace longattn::simd::LONGATTN_SIMD_TARGET {

template <class V, int kChains>
double fma_peak_probe(std::int64_t iterations) {
  // The operands come from volatiles: with constants the compiler can prove 1·x + y == 1 for
  // the first chain and fold it away, and the probe would count a chain it never runs.
  volatile float start = 1.0f, factor = 0.999999f, term = 1e-6f;
  V acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = V::broadcast(start + 0.001f * c);
  const V x = V::broadcast(factor);
  const V y = V::broadcast(term);
  for (std::int64_t i = 0; i < iterations; ++i) {
    for (int c = 0; c < kChains; ++c) acc[c] = fma(acc[c], x, y);
  }
  V sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = sum + acc[c];
  volatile float sink = sum.reduce_add();
  (void)sink;
  return 2.0 * V::lanes * kChains * static_cast<double>(iterations);
}

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
