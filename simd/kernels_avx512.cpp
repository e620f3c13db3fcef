// The avx512 target: attention_kernels-inl.hpp compiled with this target's flags (CMakeLists).
#define LONGATTN_SIMD_TARGET avx512
#define LONGATTN_UNROLL_BLOCK _Pragma("GCC unroll 16")
#include "simd/attention_kernels-inl.hpp"
#include "simd/targets.hpp"

namespace longattn::simd {

const KernelTable& avx512_kernels() {
  // Register block: 6 rows × 4 zmm = 24 accumulators + 4 B vectors + 1 broadcast of 32 zmm.
  static const KernelTable table =
      avx512::make_kernel_table<avx512::VecF32<xsimd::avx512bw>, 6, 4, 12>(Isa::avx512, "avx512");
  return table;
}

}  // namespace longattn::simd
