// The tile kernels: QKᵀ over packed key panels (scores with their row maxima, or
// probabilities with their row sums), P·V over value rows, additive scores, and their bf16
// products where the target has them.
// Part of the kernels one target compiles (simd/kernel_table-inl.hpp): included once per
// target translation unit, inside that target's namespace.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "simd/elementwise_kernels-inl.hpp"
#include "simd/gemm_block-inl.hpp"

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// QKᵀ over key panels, its operands as kOps says (gemm_block): bf16 pairs, d counting the
// pairs of q rows and panels, the products scaled by product_scale; int8 quads, d counting
// quads, q rows d + kInt8QueryTail units apart and panels d + kInt8PanelTail rows.
// kProbabilities: s = 2^(row_shift[r] + score), zero outside terms.row_bounds, and
// row_out[r] = the row's sum; otherwise s = score and row_out[r] is raised to the row's max.
template <class V, int R, int NV, Operands kOps, bool kProbabilities>
void qk_tile_of(const float* q, std::int64_t rows, std::int64_t d, const float* key_panels, std::int64_t first_key,
                std::int64_t keys, float* s, std::int64_t lds, const float* row_shift, ScoreTerms terms,
                float* row_out, PrefetchQueue& prefetch, float product_scale) {
  constexpr int L = V::lanes;
  constexpr int panel_width = NV * L;
  constexpr bool kQuads = kOps == Operands::int8_quads;
  const std::int64_t lda = kQuads ? d + kInt8QueryTail : d, panel_rows = kQuads ? d + kInt8PanelTail : d;
  // Probabilities stored in bf16 are indexed from the tile's first column (gemm_block).
  constexpr bool kBf16Columns = kOps == Operands::bf16_pairs || (kQuads && kInt8ProbabilitiesInBf16);
  V row_vectors[kMaxTileRows];  // per-row vector sums or maxima
  const V first_value = kProbabilities ? V::zero() : V::broadcast(-std::numeric_limits<float>::infinity());
  for (std::int64_t r = 0; r < rows; ++r) row_vectors[r] = first_value;
  V* vsum = kProbabilities ? row_vectors : nullptr;
  V* vmax = kProbabilities ? nullptr : row_vectors;
  const Start start = kProbabilities ? Start::row_value : Start::zero;
  // Panels outside, rows inside: one key panel (d · panel_width floats) stays in L1 while
  // every row group of the query block passes over it. The first and last panel may be used
  // in part, a vector of keys at a time (the edges of a window or of the causal diagonal).
  const std::int64_t first = first_key / L, last = (first_key + keys) / L;  // in vectors
  for (std::int64_t v0 = first; v0 < last;) {
    const std::int64_t in_panel = v0 % NV, count = NV - in_panel < last - v0 ? NV - in_panel : last - v0;
    const float* panel = key_panels + v0 / NV * panel_rows * panel_width + in_panel * L;
    const float* diagonal = terms.diagonals ? terms.diagonals + (rows - 1) + (v0 - first) * L : nullptr;
    float* tile = s + (v0 - first) * L;
    if (kProbabilities && terms.row_bounds != nullptr) {
      gemm_tile<V, R, NV, true, kOps>(rows, count, q, lda, panel, panel_width, d, tile, lds, start, row_shift,
                                      diagonal, terms.row_bounds, (v0 - first) * L, vmax, vsum, prefetch,
                                      product_scale, terms.softcap);
    } else {
      gemm_tile<V, R, NV, false, kOps>(rows, count, q, lda, panel, panel_width, d, tile, lds, start, row_shift,
                                       diagonal, nullptr, kBf16Columns ? (v0 - first) * L : 0, vmax, vsum, prefetch,
                                       product_scale, terms.softcap);
    }
    v0 += count;
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    if constexpr (kProbabilities) {
      row_out[r] = row_vectors[r].reduce_add();
    } else {
      row_out[r] = std::max(row_out[r], row_vectors[r].reduce_max());
    }
  }
}

template <class V, int R, int NV>
void qk_scores(const float* q, std::int64_t rows, std::int64_t d, const float* key_panels, std::int64_t first_key,
               std::int64_t keys, float* s, std::int64_t lds, ScoreTerms terms, float* row_max,
               PrefetchQueue& prefetch) {
  qk_tile_of<V, R, NV, Operands::fp32, false>(q, rows, d, key_panels, first_key, keys, s, lds, nullptr, terms, row_max,
                                     prefetch, 1.0f);
}

template <class V, int R, int NV>
void qk_probabilities(const float* q, std::int64_t rows, std::int64_t d, const float* key_panels,
                      std::int64_t first_key, std::int64_t keys, float* s, std::int64_t lds, const float* row_shift,
                      ScoreTerms terms, float* row_sum, PrefetchQueue& prefetch) {
  qk_tile_of<V, R, NV, Operands::fp32, true>(q, rows, d, key_panels, first_key, keys, s, lds, row_shift, terms, row_sum,
                                    prefetch, 1.0f);
}

// Value rows per pass over the output rows: 32 KiB of them stay in L1 while every row group
// of the block reads them (bench/TUNING.md "P·V chunk").
inline constexpr std::int64_t kPvChunkBytes = 32 << 10;

// pv_tile, and (kOps bf16_pairs) its bf16 products: then `keys` counts pairs of P rows and
// value pair rows (ldv 4-byte units apart), each chunk the same bytes.
template <class V, int R, int NV, Operands kOps = Operands::fp32>
void pv_tile(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t keys, const float* v,
             std::int64_t ldv, std::int64_t dv_padded, float* o, const float* row_scale, PrefetchQueue& prefetch) {
  const std::int64_t key_chunk =
      std::max<std::int64_t>(16, kPvChunkBytes / (dv_padded * static_cast<std::int64_t>(sizeof(float))));
  // No key at all still scales the rows (one pass of depth 0).
  for (std::int64_t k0 = 0; k0 == 0 || k0 < keys; k0 += key_chunk) {
    const std::int64_t depth = keys - k0 < key_chunk ? std::max<std::int64_t>(keys - k0, 0) : key_chunk;
    gemm_tile<V, R, NV, false, kOps>(rows, dv_padded / V::lanes, p + k0, ldp, v + k0 * ldv, ldv, depth, o,
                                       dv_padded, k0 == 0 && row_scale != nullptr ? Start::load_scaled : Start::load,
                                       row_scale, nullptr, nullptr, 0, static_cast<V*>(nullptr),
                                       static_cast<V*>(nullptr), prefetch);
  }
}

// tanh(x) = (1 - e) / (1 + e), e = e^(-2x) = 2^(-2x·log2 e): the exponent is capped at 126
// so that e stays finite and large negative x give -1.
template <class V>
inline V tanh_of(V x) {
  const V one = V::broadcast(1.0f);
  const V e = exp2(min(V::broadcast(126.0f), x * V::broadcast(-2.8853900817779268f)));
  return (one - e) / (one + e);
}

// Additive scores s[r][j] = scale · Σ_a w[a] · tanh(qp[r][a] + kp[a][j]) for the keys of
// `panels` projected-key panels laid out like key panels ([da][panel_width]); row_max[r] is
// raised to the row's largest score.
template <class V, int NV>
void additive_tile(const float* qp, std::int64_t rows, std::int64_t da, const float* key_panels,
                   std::int64_t panels, const float* w, float scale, float* s, std::int64_t lds, float* row_max) {
  constexpr int L = V::lanes, P = NV * L;
  for (std::int64_t r = 0; r < rows; ++r) {
    V vmax = V::broadcast(-std::numeric_limits<float>::infinity());
    for (std::int64_t p = 0; p < panels; ++p) {
      const float* panel = key_panels + p * da * P;
      V acc[NV];
      for (int v = 0; v < NV; ++v) acc[v] = V::zero();
      for (std::int64_t a = 0; a < da; ++a) {
        const V x = V::broadcast(qp[r * da + a]), wa = V::broadcast(w[a] * scale);
        for (int v = 0; v < NV; ++v) acc[v] = fma(wa, tanh_of(x + V::load(panel + a * P + v * L)), acc[v]);
      }
      for (int v = 0; v < NV; ++v) {
        acc[v].store(s + r * lds + p * P + v * L);
        vmax = max(vmax, acc[v]);
      }
    }
    const float m = vmax.reduce_max();
    if (m > row_max[r]) row_max[r] = m;
  }
}

#if defined(__AVX512BF16__)
// The bf16 products (DESIGN.md §3): the register blocks of qk_tile and pv_tile on pairs of
// bf16, summed by vdpbf16ps. Query rows, key panels and value rows hold pairs along the depth
// of their product: q rows and key panels along the features, P rows and value rows along
// the keys, so each pair is one 4-byte lane, broadcast or loaded as the fp32 kernels do.

template <class V, int R, int NV>
void qk_scores_bf16(const bf16* q, std::int64_t rows, std::int64_t pairs, const bf16* key_panels,
                    std::int64_t first_key, std::int64_t keys, float* s, std::int64_t lds, float score_scale,
                    ScoreTerms terms, float* row_max, PrefetchQueue& prefetch) {
  qk_tile_of<V, R, NV, Operands::bf16_pairs, false>(reinterpret_cast<const float*>(q), rows, pairs,
                                    reinterpret_cast<const float*>(key_panels), first_key, keys, s, lds, nullptr, terms,
                                    row_max, prefetch, score_scale);
}

template <class V, int R, int NV>
void qk_probabilities_bf16(const bf16* q, std::int64_t rows, std::int64_t pairs, const bf16* key_panels,
                           std::int64_t first_key, std::int64_t keys, float* s, std::int64_t lds, float score_scale,
                           const float* row_shift, ScoreTerms terms, float* row_sum, PrefetchQueue& prefetch) {
  qk_tile_of<V, R, NV, Operands::bf16_pairs, true>(reinterpret_cast<const float*>(q), rows, pairs,
                                   reinterpret_cast<const float*>(key_panels), first_key, keys, s, lds, row_shift,
                                   terms, row_sum, prefetch, score_scale);
}

template <class V, int R, int NV>
void pv_tile_bf16(float* p, std::int64_t rows, std::int64_t ldp, std::int64_t keys, const bf16* value_pairs,
                  std::int64_t dv_padded, float* o, const float* row_scale, bool p_in_bf16,
                  PrefetchQueue& prefetch) {
  constexpr int L = V::lanes;
  const std::int64_t pairs = (keys + 1) / 2;
  // Each row of P rounded to bf16 over the first half of its own bytes: a vector is loaded
  // before its bf16 are stored, at or before where it was read.
  const std::int64_t rounded = (2 * pairs + L - 1) / L * L;
  for (std::int64_t r = 0; r < rows && !p_in_bf16; ++r) {
    float* row = p + r * ldp;
    for (std::int64_t j = 0; j < rounded; j += L) V::load(row + j).store_bf16(reinterpret_cast<bf16*>(row) + j);
  }
  pv_tile<V, R, NV, Operands::bf16_pairs>(p, rows, ldp, pairs, reinterpret_cast<const float*>(value_pairs), dv_padded, dv_padded, o,
                          row_scale, prefetch);
}
#endif

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
