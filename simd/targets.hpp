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

}  // namespace longattn::simd
