// The int8 scores of the avx512 target with P·V in fp32: kernel_table-inl.hpp compiled with
// AVX512-VNNI besides the avx512 flags (CMakeLists), for CPUs with VNNI and without
// AVX512-BF16, and for bf16_products = widened.
#define LONGATTN_SIMD_TARGET avx512_vnni
#define LONGATTN_UNROLL_BLOCK _Pragma("GCC unroll 16")
#include "simd/kernel_table-inl.hpp"
#include "simd/targets.hpp"

namespace longattn::simd {

const Int8DotKernels& avx512_vnni_int8_dot_kernels() {
  static const Int8DotKernels kernels =
      avx512_vnni::make_int8_dot_kernels<avx512_vnni::VecF32<xsimd::avx512bw>, Avx512Block::rows,
                                         Avx512Block::vectors>();
  return kernels;
}

}  // namespace longattn::simd
