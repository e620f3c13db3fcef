// The register block both products of FlashAttention are made of: C[R × NV·lanes] over a depth
// loop that loads NV vectors of a B row and broadcasts one A element per C row.
//   S = Q Kᵀ: A = Q rows (depth D), B = a key panel [D][panel_width].
//   O += P V: A = P rows (depth = keys), B = value rows [keys][dv_padded].
// The accumulators stay in registers for the whole depth loop (R·NV + NV + 1 registers).
// Part of the kernels one target compiles (simd/kernel_table-inl.hpp): included once per
// target translation unit, inside that target's namespace.
#pragma once

#include <cstdint>
#include <limits>

#include "simd/kernel_table.hpp"
#include "simd/softcap-inl.hpp"
#include "simd/vec_f32.hpp"

// Set by a target whose register blocks should be unrolled in full (below each loop over a
// block's rows or vectors): GCC then keeps the accumulators in registers from start to store,
// where it otherwise parks them on the stack around the depth loop. Faster on AVX-512; on
// AVX2 it depends on the core, so AVX2 has both builds (bench/TUNING.md "Register blocks
// unrolled").
#ifndef LONGATTN_UNROLL_BLOCK
#define LONGATTN_UNROLL_BLOCK
#endif

// Set by a target whose depth loop should be unrolled a few steps, so that its increment,
// compare and branch are paid once per few steps: an AVX2 6 × 2 step is 20 instructions for
// 12 FMAs, near what a core dispatches (bench/TUNING.md "Register blocks unrolled").
#ifndef LONGATTN_UNROLL_DEPTH
#define LONGATTN_UNROLL_DEPTH
#endif

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// Largest row count qk_tile accepts (the engine's query block never exceeds it).
inline constexpr int kMaxTileRows = 256;

// What the 4-byte units of A and B hold, and how a step of the depth loop multiplies them:
// fp32        a float each, multiplied by FMAs;
// bf16_pairs  a pair of bf16 along the depth (the lower-addressed first), by dot_bf16_pairs;
// int8_quads  4 int8 along the depth, A's signed and B's unsigned (each its value + 128),
//             summed in int32 by dot_u8_s8_quads (quantized_scores below).
enum class Operands { fp32, bf16_pairs, int8_quads };

// Whether this target's int8 products store probabilities in bf16, for the P·V of bf16 pairs:
// the ones compiled with AVX512-BF16.
#if defined(__AVX512BF16__)
inline constexpr bool kInt8ProbabilitiesInBf16 = true;
#else
inline constexpr bool kInt8ProbabilitiesInBf16 = false;
#endif

// How a block of C starts: at zero or at a value per row (scores, less a known shift), or
// loaded (output accumulators), with the softmax rescale of each row applied on the way in
// when the row max grew. row_value[r] is the row's start or rescale.
enum class Start { zero, row_value, load, load_scaled };

// C[r][0 .. NV·lanes) = start + A[r][0 .. depth) · B[0 .. depth)[..] for r < R, plus
// diagonal[c - r] at column c when diagonal is not null (a position bias, which depends on
// the key's offset from the query alone; read from index -(R - 1) on).
// With vmax, the running per-row vector max is raised to the block's values. With vsum, C
// is stored as 2^C (finite values, denormals flushed) and vsum[r] gains the row's terms;
// kBounded, only at columns [bounds[2r], bounds[2r + 1]) - bounds_column of row r, 0
// elsewhere (the keys a row sees, counted from bounds_column columns left of the block).
// bf16_pairs (depth counts pairs): a block that starts at zero or at row_value (scores) is
// start + product_scale · A·B, and with vsum 2^C is stored as bf16 for the next bf16
// product (P·V): row r's column j (the block's first is bounds_column) at bf16 index j of
// the row, over the first half of the row's bytes. int8_quads: see quantized_scores.
// The steps of gemm_block, each on the block's accumulators; inlined in full, so that the
// accumulators stay in registers from start to store.
#define LONGATTN_BLOCK_STEP [[gnu::always_inline]] inline

// The accumulators at their start: zero, row_value[r], or C loaded (and scaled by
// row_value[r]), plus the diagonal term; pair products that are scaled after the depth loop
// start at zero.
template <class V, int R, int NV>
LONGATTN_BLOCK_STEP void start_block(V (&acc)[R][NV], const float* c, std::int64_t ldc, Start start,
                                     const float* row_value, const float* diagonal, bool scaled_after) {
  constexpr int L = V::lanes;
  if (scaled_after) {
    LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
    }
    return;
  }
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
    if (start == Start::zero) {
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
    } else if (start == Start::row_value) {
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = V::broadcast(row_value[r]);
    } else {
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = V::load(c + r * ldc + v * L);
      if (start == Start::load_scaled) {
        const V scale = V::broadcast(row_value[r]);
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = acc[r][v] * scale;
      }
    }
    if (diagonal != nullptr) {  // one unaligned vector per row and column block
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = acc[r][v] + V::load(diagonal - r + v * L);
    }
  }
}

// acc[r] += A[r][0 .. depth) · B[0 .. depth), as kOps multiplies.
template <class V, int R, int NV, Operands kOps>
LONGATTN_BLOCK_STEP void multiply_depth(V (&acc)[R][NV], const float* a, std::int64_t lda, const float* b,
                                        std::int64_t ldb, std::int64_t depth) {
  constexpr int L = V::lanes;
  LONGATTN_UNROLL_DEPTH for (std::int64_t k = 0; k < depth; ++k) {
    V bk[NV];
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) bk[v] = V::load(b + k * ldb + v * L);
    LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
      const V ar = V::broadcast(a[r * lda + k]);
      if constexpr (kOps == Operands::bf16_pairs) {
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = dot_bf16_pairs(acc[r][v], ar, bk[v]);
      } else if constexpr (kOps == Operands::int8_quads) {
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = dot_u8_s8_quads(acc[r][v], bk[v], ar);
      } else {
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = fma(ar, bk[v], acc[r][v]);
      }
    }
  }
}

// Pair products scaled after the depth loop, on the way to their start value and diagonal.
template <class V, int R, int NV>
LONGATTN_BLOCK_STEP void scale_to_start(V (&acc)[R][NV], Start start, const float* row_value, const float* diagonal,
                                        float product_scale) {
  constexpr int L = V::lanes;
  const V scale = V::broadcast(product_scale);
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
    const V first = start == Start::row_value ? V::broadcast(row_value[r]) : V::zero();
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) {
      acc[r][v] = fma(acc[r][v], scale, diagonal != nullptr ? first + V::load(diagonal - r + v * L) : first);
    }
  }
}

// acc = softcap · tanh(scale · acc / softcap) plus its start value and diagonal term:
// soft-capped scores, in registers, the cap's own offset joined with what follows it.
// kExponent: acc is the cap's exponent already (fp32 key panels carry its factor).
template <class V, int R, int NV, bool kExponent>
LONGATTN_BLOCK_STEP void cap_to_start(V (&acc)[R][NV], float scale, float softcap, Start start, const float* row_value,
                                      const float* diagonal) {
  constexpr int L = V::lanes;
  const SoftCap<V> cap(softcap, scale);
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
    const V first = (start == Start::row_value ? V::broadcast(row_value[r]) : V::zero()) + cap.minus_cap;
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) {
      const V base = diagonal != nullptr ? first + V::load(diagonal - r + v * L) : first;
      acc[r][v] = kExponent ? cap.plus_from_exponent(acc[r][v], base) : cap.plus(acc[r][v], base);
    }
  }
}

// acc = 2^acc and vsum[r] += the row's terms; kBounded: only the columns each row sees
// (bounds, counted from bounds_column columns left of the block), 0 elsewhere. kCoarse: to
// 8.6e-5 (exp2_coarse_finite), for the int8 scores' probabilities.
template <class V, int R, int NV, bool kBounded, bool kCoarse>
LONGATTN_BLOCK_STEP void exponentiate(V (&acc)[R][NV], const std::int32_t* bounds, std::int64_t bounds_column,
                                      V* vsum) {
  constexpr int L = V::lanes;
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
    V total = vsum[r];
    if constexpr (kBounded) {
      // The row's visible columns as one bit mask over the block (NV·L <= 64 columns),
      // built in general registers: one mask move per vector beside exp2.
      static_assert(NV * L <= 64);
      auto columns_below = [](std::int64_t n) -> std::uint64_t {
        return n <= 0 ? 0 : n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
      };
      const std::uint64_t visible =
          columns_below(bounds[2 * r + 1] - bounds_column) & ~columns_below(bounds[2 * r] - bounds_column);
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) {
        const auto keep = static_cast<std::uint32_t>(visible >> (v * L));
        acc[r][v] = kCoarse ? exp2_coarse_finite_masked(acc[r][v], keep) : exp2_finite_masked(acc[r][v], keep);
      }
    } else {
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) {
        acc[r][v] = kCoarse ? exp2_coarse_finite(acc[r][v]) : exp2_finite(acc[r][v]);
      }
    }
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) total = total + acc[r][v];
    vsum[r] = total;
  }
}

// C = acc in fp32, or in bf16 (row r's column j, the block's first being bounds_column, at
// bf16 index j of the row); vmax[r] raised to the row's values.
template <class V, int R, int NV, Operands kOps>
LONGATTN_BLOCK_STEP void store_block(V (&acc)[R][NV], float* c, std::int64_t ldc, bool as_bf16,
                                     std::int64_t bounds_column, V* vmax) {
  constexpr int L = V::lanes;
  constexpr bool kMayStoreBf16 =
      kOps == Operands::bf16_pairs || (kOps == Operands::int8_quads && kInt8ProbabilitiesInBf16);
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
    if constexpr (kMayStoreBf16) {
      if (as_bf16) {
        bf16* row = reinterpret_cast<bf16*>(c + r * ldc - bounds_column) + bounds_column;
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v].store_bf16(row + v * L);
        continue;
      }
    }
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v].store(c + r * ldc + v * L);
  }
  if (vmax == nullptr) return;
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
    V m = vmax[r];
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) m = max(m, acc[r][v]);
    vmax[r] = m;
  }
}

// int8_quads: A's rows are depth quads, then their sum's start (-128 · the row's Σ q, int32
// bits, which takes back what B's offset adds) and the row's factor (fp32); B's row `depth`
// holds a fp32 scale per column. The scores are start + factor · scale · the int32 sum.
template <class V, int R, int NV>
LONGATTN_BLOCK_STEP void start_quantized(V (&acc)[R][NV], const float* a, std::int64_t lda, std::int64_t depth) {
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
    const V start = V::broadcast(a[r * lda + depth]);
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = start;
  }
}

template <class V, int R, int NV>
LONGATTN_BLOCK_STEP void quantized_scores(V (&acc)[R][NV], const float* a, std::int64_t lda, const float* b,
                                          std::int64_t ldb, std::int64_t depth, Start start, const float* row_value,
                                          const float* diagonal) {
#if defined(__AVX512VNNI__)
  constexpr int L = V::lanes;
  V column_scale[NV];
  LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) column_scale[v] = V::load(b + depth * ldb + v * L);
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
    const V factor = V::broadcast(a[r * lda + depth + 1]);
    const V first = start == Start::row_value ? V::broadcast(row_value[r]) : V::zero();
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) {
      const V base = diagonal != nullptr ? first + V::load(diagonal - r + v * L) : first;
      acc[r][v] = fma(int32_bits_to_float(acc[r][v]) * factor, column_scale[v], base);
    }
  }
#endif
}

template <class V, int R, int NV, bool kBounded, Operands kOps = Operands::fp32>
inline void gemm_block(const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                       std::int64_t depth, float* c, std::int64_t ldc, Start start,
                       const float* row_value, const float* diagonal, const std::int32_t* bounds,
                       std::int64_t bounds_column, V* vmax, V* vsum, float product_scale = 1.0f,
                       float softcap = 0.0f) {
  V acc[R][NV];
  if constexpr (kOps == Operands::int8_quads) {  // scores alone, never capped
    start_quantized<V, R, NV>(acc, a, lda, depth);
    multiply_depth<V, R, NV, kOps>(acc, a, lda, b, ldb, depth);
    quantized_scores<V, R, NV>(acc, a, lda, b, ldb, depth, start, row_value, diagonal);
  } else {
    // Pairs of bf16 products have no fp32 factor to fold in, and capped scores are capped
    // before anything joins them: the sums go to their start value after the depth loop.
    const bool scores = start == Start::zero || start == Start::row_value;
    const bool capped = softcap > 0.0f && scores;
    const bool scaled_after = (kOps == Operands::bf16_pairs || capped) && scores;
    start_block<V, R, NV>(acc, c, ldc, start, row_value, diagonal, scaled_after);
    multiply_depth<V, R, NV, kOps>(acc, a, lda, b, ldb, depth);
    if (capped) {
      cap_to_start<V, R, NV, kOps == Operands::fp32>(acc, product_scale, softcap, start, row_value, diagonal);
    } else if (scaled_after) {
      scale_to_start<V, R, NV>(acc, start, row_value, diagonal, product_scale);
    }
  }
  if (vsum != nullptr) {
    exponentiate<V, R, NV, kBounded, kOps == Operands::int8_quads>(acc, bounds, bounds_column, vsum);
  }
  store_block<V, R, NV, kOps>(acc, c, ldc, vsum != nullptr, bounds_column, vmax);
}

// gemm_block for a run-time row count 1 ≤ rows ≤ kRows: the row tails get exact-size
// kernels, faster than a masked full-height one (bench/TUNING.md "Exact-size row tails").
template <class V, int kRows, int NV, bool kBounded, Operands kOps = Operands::fp32>
inline void gemm_rows(int rows, const float* a, std::int64_t lda, const float* b,
                      std::int64_t ldb, std::int64_t depth, float* c, std::int64_t ldc,
                      Start start, const float* row_value, const float* diagonal, const std::int32_t* bounds,
                      std::int64_t bounds_column, V* vmax, V* vsum, float product_scale = 1.0f,
                      float softcap = 0.0f) {
  if constexpr (kRows >= 1) {
    if (rows == kRows) {
      gemm_block<V, kRows, NV, kBounded, kOps>(a, lda, b, ldb, depth, c, ldc, start, row_value, diagonal, bounds,
                                                 bounds_column, vmax, vsum, product_scale, softcap);
    } else {
      gemm_rows<V, kRows - 1, NV, kBounded, kOps>(rows, a, lda, b, ldb, depth, c, ldc, start, row_value, diagonal,
                                                    bounds, bounds_column, vmax, vsum, product_scale, softcap);
    }
  }
}

// gemm over all `rows` rows and `vectors` vectors of columns, in R × NV blocks (diagonal
// and bounds as gemm_block's, for row 0 and column 0).
// Between blocks, a few lines of the caller's prefetch queue are issued (its lines per block).
template <class V, int R, int NV, bool kBounded = false, Operands kOps = Operands::fp32>
inline void gemm_tile(std::int64_t rows, std::int64_t vectors, const float* a, std::int64_t lda,
                      const float* b, std::int64_t ldb, std::int64_t depth, float* c,
                      std::int64_t ldc, Start start, const float* row_value, const float* diagonal,
                      const std::int32_t* bounds, std::int64_t bounds_column, V* vmax, V* vsum,
                      PrefetchQueue& prefetch, float product_scale = 1.0f, float softcap = 0.0f) {
  constexpr int L = V::lanes;
  std::int64_t col = 0;
  for (; col + NV <= vectors; col += NV) {
    for (std::int64_t r = 0; r < rows; r += R) {
      const int n = static_cast<int>(rows - r < R ? rows - r : R);
      gemm_rows<V, R, NV, kBounded, kOps>(n, a + r * lda, lda, b + col * L, ldb, depth, c + r * ldc + col * L,
                                            ldc, start, row_value ? row_value + r : nullptr,
                                            diagonal ? diagonal + col * L - r : nullptr,
                                            bounds ? bounds + 2 * r : nullptr, bounds_column + col * L,
                                            vmax ? vmax + r : nullptr, vsum ? vsum + r : nullptr, product_scale,
                                            softcap);
      prefetch.issue_block();
    }
  }
  if constexpr (NV > 1) {
    if (col < vectors) {
      gemm_tile<V, R, NV - 1, kBounded, kOps>(rows, vectors - col, a, lda, b + col * L, ldb, depth,
                                                c + col * L, ldc, start, row_value,
                                                diagonal ? diagonal + col * L : nullptr, bounds,
                                                bounds_column + col * L, vmax, vsum, prefetch, product_scale,
                                                softcap);
    }
  }
}

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
