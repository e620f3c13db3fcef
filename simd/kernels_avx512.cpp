// The avx512 target: kernel_table-inl.hpp compiled with this target's flags (CMakeLists).
#define LONGATTN_SIMD_TARGET avx512
#define LONGATTN_UNROLL_BLOCK _Pragma("GCC unroll 16")
#include "simd/kernel_table-inl.hpp"
#include "simd/targets.hpp"

namespace longattn::simd {

const KernelTable& avx512_kernels() {
  static const KernelTable table = [] {
    KernelTable kernels =
        avx512::make_kernel_table<avx512::VecF32<xsimd::avx512bw>, Avx512Block::rows, Avx512Block::vectors,
                                  Avx512Block::probe_chains>(Isa::avx512, "avx512");
    if (cpu_has_avx512_bf16()) kernels.bf16_dot = &avx512_bf16_dot_kernels();
    if (cpu_has_avx512_vnni()) {
      kernels.int8_dot = &avx512_vnni_int8_dot_kernels();
      if (cpu_has_avx512_bf16()) kernels.int8_dot_bf16 = &avx512_bf16_int8_dot_kernels();
    }
    return kernels;
  }();
  return table;
}

}  // namespace longattn::simd
