// The avx2 target: kernel_table-inl.hpp compiled with this target's flags (CMakeLists).
#define LONGATTN_SIMD_TARGET avx2
#define LONGATTN_UNROLL_DEPTH _Pragma("GCC unroll 4")
#include "simd/kernel_table-inl.hpp"
#include "simd/targets.hpp"

namespace longattn::simd {

const KernelTable& avx2_kernels() {
  using V = avx2::VecF32<xsimd::fma3<xsimd::avx2>>;
  static const KernelTable table =
      avx2::make_kernel_table<V, Avx2Block::rows, Avx2Block::vectors, Avx2Block::probe_chains>(
          Isa::avx2, "avx2");
  return table;
}

}  // namespace longattn::simd
