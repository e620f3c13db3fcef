// The avx2 target with its register blocks unrolled in full, the AVX2 kernels dispatch.cpp
// picks on AMD cores: the same kernels and block as kernels_avx2.cpp, the same results.
#define LONGATTN_SIMD_TARGET avx2_unrolled
#define LONGATTN_UNROLL_BLOCK _Pragma("GCC unroll 16")
#define LONGATTN_UNROLL_DEPTH _Pragma("GCC unroll 4")
#include "simd/kernel_table-inl.hpp"
#include "simd/targets.hpp"

namespace longattn::simd {

const KernelTable& avx2_unrolled_kernels() {
  using V = avx2_unrolled::VecF32<xsimd::fma3<xsimd::avx2>>;
  static const KernelTable table =
      avx2_unrolled::make_kernel_table<V, Avx2Block::rows, Avx2Block::vectors, Avx2Block::probe_chains>(
          Isa::avx2, "avx2, blocks unrolled");
  return table;
}

}  // namespace longattn::simd
