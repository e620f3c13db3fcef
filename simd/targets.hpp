// The kernel table of each compiled target; each is defined in its own kernels_<isa>.cpp.
// Only dispatch.cpp calls these, after checking that the CPU runs the target (and the tests,
// which hold the two AVX2 builds to the same bits).
#pragma once

#include "simd/kernel_table.hpp"

namespace longattn::simd {

const KernelTable& avx512_kernels();
const KernelTable& avx2_kernels();
const KernelTable& avx2_unrolled_kernels();  // the same kernels, register blocks unrolled in full
const KernelTable& scalar_kernels();
const Bf16DotKernels& avx512_bf16_dot_kernels();  // only where cpu_has_avx512_bf16()
const Int8DotKernels& avx512_vnni_int8_dot_kernels();  // only where cpu_has_avx512_vnni()
const Int8DotKernels& avx512_bf16_int8_dot_kernels();  // only where both

// The AVX-512 register block, shared by the fp32 kernels and the bf16 products: 6 rows × 4 zmm
// = 24 accumulators + 4 B vectors + 1 broadcast of 32 zmm; 12 chains in the peak probe.
struct Avx512Block {
  static constexpr int rows = 6, vectors = 4, probe_chains = 12;
};

// The AVX2 register block, one definition for both AVX2 builds, which must stay the same
// kernels (tests/kernel_builds_test.cpp holds them to the same bits): 6 rows × 2 ymm = 12
// accumulators + 2 B vectors + 1 broadcast of 16 ymm; 10 chains in the peak probe.
struct Avx2Block {
  static constexpr int rows = 6, vectors = 2, probe_chains = 10;
};

}  // namespace longattn::simd
