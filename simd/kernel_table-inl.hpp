// The kernel table of one target: every kernel family, written once on VecF32 and compiled
// once per target.
//
// Included by exactly one translation unit per target (kernels_avx512.cpp, ...), which
// defines LONGATTN_SIMD_TARGET to a namespace of its own and the compiler flags of the target.
#pragma once

#include "simd/elementwise_kernels-inl.hpp"
#include "simd/gemm_block-inl.hpp"
#include "simd/int8_kernels-inl.hpp"
#include "simd/packing_kernels-inl.hpp"
#include "simd/peak_probe-inl.hpp"
#include "simd/row_kernels-inl.hpp"
#include "simd/tile_kernels-inl.hpp"

namespace longattn::simd::LONGATTN_SIMD_TARGET {

#if defined(__AVX512BF16__)
template <class V, int R, int NV>
Bf16DotKernels make_bf16_dot_kernels() {
  return Bf16DotKernels{
      .qk_scores = &qk_scores_bf16<V, R, NV>,
      .qk_probabilities = &qk_probabilities_bf16<V, R, NV>,
      .pv_tile = &pv_tile_bf16<V, R, NV>,
      .pack_key_panel = &pack_key_pair_panel<V, NV>,
      .pack_value_pairs = &pack_value_pairs<V, bf16>,
  };
}
#endif

// The table of one target. R × NV is the register block; kChains keeps every FMA pipe busy
// (pipes × latency independent accumulators).
template <class V, int R, int NV, int kChains>
KernelTable make_kernel_table(Isa isa, const char* name) {
  return KernelTable{
      .isa = isa,
      .name = name,
      .lanes = V::lanes,
      .panel_width = NV * V::lanes,
      .tile = {.qk_scores = &qk_scores<V, R, NV>,
               .qk_probabilities = &qk_probabilities<V, R, NV>,
               .pv_tile = &pv_tile<V, R, NV>,
               .additive_tile = &additive_tile<V, NV>},
      .rows = {.qk_rows = &qk_rows<V, float>,
               .qk_rows_bf16 = &qk_rows<V, bf16>,
               .qk_rows_int8 = &qk_rows_int8<V>,
               .pv_rows = &pv_rows<V, float>,
               .pv_rows_bf16 = &pv_rows<V, bf16>,
               .pv_rows_int8 = &pv_rows_int8<V>},
      .elementwise = {.exp2_rows = &exp2_rows<V>,
                      .add_diagonal_bias = &add_diagonal_bias<V>,
                      .sigmoid_rows = &sigmoid_rows<V>,
                      .relu_rows = &relu_rows<V>,
                      .softcap_rows = &softcap_rows<V>,
                      .add_columns = &add_columns<V>,
                      .add_row_dots = &add_row_dots<V>,
                      .max_of = &max_of<V>,
                      .scale_rows = &scale_rows<V>,
                      .widen_bf16 = &widen_bf16<V>,
                      .dequantize_int8 = &dequantize_int8<V>,
                      .all_finite = &all_finite<float>,
                      .all_finite_bf16 = &all_finite<bf16>,
                      .exp2 = &exp2_array<V>,
                      .exp2_coarse = &exp2_coarse_array<V>,
                      .elu_plus_one = &elu_plus_one<V>},
      .packing = {.pack_key_panel = &pack_key_panel<V, NV>},
      .bf16_dot = nullptr,
      .int8_dot = nullptr,
      .int8_dot_bf16 = nullptr,
      .fma_peak_probe = &fma_peak_probe<V, kChains>,
  };
}

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
