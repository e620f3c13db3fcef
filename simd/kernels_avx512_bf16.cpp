// The bf16 products of the avx512 target, and its int8 scores with P·V in bf16:
// kernel_table-inl.hpp compiled with AVX512-BF16 and AVX512-VNNI besides the avx512 flags
// (CMakeLists), in a namespace of its own, so that only these kernels may hold their
// instructions; the avx512 table takes them where the CPU runs them.
#define LONGATTN_SIMD_TARGET avx512_bf16
#define LONGATTN_UNROLL_BLOCK _Pragma("GCC unroll 16")
#include "simd/kernel_table-inl.hpp"
#include "simd/targets.hpp"

namespace longattn::simd {

const Bf16DotKernels& avx512_bf16_dot_kernels() {
  static const Bf16DotKernels kernels =
      avx512_bf16::make_bf16_dot_kernels<avx512_bf16::VecF32<xsimd::avx512bw>, Avx512Block::rows,
                                         Avx512Block::vectors>();
  return kernels;
}

const Int8DotKernels& avx512_bf16_int8_dot_kernels() {
  static const Int8DotKernels kernels =
      avx512_bf16::make_int8_dot_kernels<avx512_bf16::VecF32<xsimd::avx512bw>, Avx512Block::rows,
                                         Avx512Block::vectors>();
  return kernels;
}

}  // namespace longattn::simd
