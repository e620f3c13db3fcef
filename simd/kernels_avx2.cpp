// The avx2 target: attention_kernels-inl.hpp compiled with this target's flags (CMakeLists).
#define LONGATTN_SIMD_TARGET avx2
#define LONGATTN_UNROLL_DEPTH _Pragma("GCC unroll 4")
#include "simd/attention_kernels-inl.hpp"
#include "simd/targets.hpp"

namespace longattn::simd {

const KernelTable& avx2_kernels() {
  // Register block: 6 rows × 2 ymm = 12 accumulators + 2 B vectors + 1 broadcast of 16 ymm.
  static const KernelTable table =
      avx2::make_kernel_table<avx2::VecF32<xsimd::fma3<xsimd::avx2>>, 6, 2, 10>(Isa::avx2, "avx2");
  return table;
}

}  // namespace longattn::simd
