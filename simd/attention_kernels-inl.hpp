// The attention micro-kernels, written once on VecF32 and compiled once per target.
//
// Included by exactly one translation unit per target (kernels_avx512.cpp, ...), which
// defines LONGATTN_SIMD_TARGET to a namespace of its own and the compiler flags of the target.
//
// Both products of FlashAttention are the same register-blocked shape: C[R × NV·lanes] over a
// depth loop that loads NV vectors of a B row and broadcasts one A element per C row.
//   S = Q Kᵀ: A = Q rows (depth D), B = a key panel [D][panel_width].
//   O += P V: A = P rows (depth = keys), B = value rows [keys][dv_padded].
// The accumulators stay in registers for the whole depth loop (R·NV + NV + 1 registers).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "simd/kernel_table.hpp"
#include "simd/vec_f32.hpp"

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// Largest row count qk_tile accepts (the engine's query block never exceeds it).
inline constexpr int kMaxTileRows = 256;

// Lines of the prefetch queue issued after each register block (a 6 × 4 block over D = 64
// is ~1500 FMAs): a query block of a (256, 256) window runs ~300 blocks and queues ~1150
// lines for the next one. Measured there (n = 16384, D = 64, 1 thread, medians of 7):
// 2 / 4 / 8 lines 151.4 / 154.0 / 157.2 GFLOP/s; in a second run 8 / 16 / 32 lines 156.0 /
// 152.6 / 146.5.
inline constexpr int kPrefetchLinesPerBlock = 8;

// Set by a target whose register blocks should be unrolled in full (below each loop over a
// block's rows or vectors): GCC then keeps the accumulators in registers from start to store,
// where it otherwise parks them on the stack around the depth loop (a store and a load of
// every one per block). On AVX-512 full attention ran 1.5 % faster at D = 128, 0.7 % at
// D = 64, a (256, 256) window 1.6 %; AVX2 (16 registers) 2.7 % slower on an Intel Xeon,
// 2.6 % / 4.8 % faster (D = 64 / 128) on a Zen 3: AVX2 has both builds (dispatch.cpp).
#ifndef LONGATTN_UNROLL_BLOCK
#define LONGATTN_UNROLL_BLOCK
#endif

// Set by a target whose depth loop should be unrolled a few steps, so that its increment,
// compare and branch are paid once per few steps. An AVX2 6 × 2 step is 20 instructions
// for 12 FMAs, near what a core dispatches while its sibling thread runs too. On a Zen 3
// host with a busy neighbour, unrolled 4 steps: the hot 96 × 256 tile (QKᵀ with exp2, then
// P·V, D = 64) 1.10x as fast (1.02x in the host's quiet spells; 2 and 8 steps 0.99x of 4),
// full attention 1.062x at D = 64, 1.033x at D = 128 (kernels alternated in one process).
#ifndef LONGATTN_UNROLL_DEPTH
#define LONGATTN_UNROLL_DEPTH
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
// kPairs: each 4 bytes of A and B hold a pair of bf16 (depth counts pairs), multiplied by
// dot_bf16_pairs; a block that starts at zero or at row_value (scores) is then
// start + product_scale · A·B, and with vsum 2^C is stored as bf16 for the next bf16
// product (P·V): row r's column j (the block's first is bounds_column) at bf16 index j of
// the row, over the first half of the row's bytes.
template <class V, int R, int NV, bool kBounded, bool kPairs = false>
inline void gemm_block(const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                       std::int64_t depth, float* c, std::int64_t ldc, Start start,
                       const float* row_value, const float* diagonal, const std::int32_t* bounds,
                       std::int64_t bounds_column, V* vmax, V* vsum, float product_scale = 1.0f) {
  constexpr int L = V::lanes;
  V acc[R][NV];
  // Pairs of bf16 products have no fp32 factor to fold in: the sums are scaled after the
  // depth loop, on the way to their start value.
  const bool scaled_after = kPairs && (start == Start::zero || start == Start::row_value);
  if (scaled_after) {
    LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
    }
  }
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R && !scaled_after; ++r) {
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
  LONGATTN_UNROLL_DEPTH for (std::int64_t k = 0; k < depth; ++k) {
    V bk[NV];
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) bk[v] = V::load(b + k * ldb + v * L);
    LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
      const V ar = V::broadcast(a[r * lda + k]);
      if constexpr (kPairs) {
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = dot_bf16_pairs(acc[r][v], ar, bk[v]);
      } else {
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = fma(ar, bk[v], acc[r][v]);
      }
    }
  }
  if (scaled_after) {
    const V scale = V::broadcast(product_scale);
    LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
      const V first = start == Start::row_value ? V::broadcast(row_value[r]) : V::zero();
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) {
        acc[r][v] = fma(acc[r][v], scale, diagonal != nullptr ? first + V::load(diagonal - r + v * L) : first);
      }
    }
  }
  if (vsum != nullptr) {
    LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
      V total = vsum[r];
      if constexpr (kBounded) {
        // The row's visible columns as one bit mask over the block (NV·L <= 64 columns),
        // built in general registers: one mask move per vector beside exp2.
        static_assert(NV * L <= 64);
        auto columns_below = [](std::int64_t n) -> std::uint64_t {
          return n <= 0 ? 0 : n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
        };
        const std::uint64_t visible = columns_below(bounds[2 * r + 1] - bounds_column) &
                                      ~columns_below(bounds[2 * r] - bounds_column);
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) {
          acc[r][v] = exp2_finite_masked(acc[r][v], static_cast<std::uint32_t>(visible >> (v * L)));
        }
      } else {
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v] = exp2_finite(acc[r][v]);
      }
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) total = total + acc[r][v];
      vsum[r] = total;
    }
  }
  bool stored = false;
  if constexpr (kPairs) {
    if (vsum != nullptr) {
      LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
        bf16* row = reinterpret_cast<bf16*>(c + r * ldc - bounds_column) + bounds_column;
        LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v].store_bf16(row + v * L);
      }
      stored = true;
    }
  }
  LONGATTN_UNROLL_BLOCK for (int r = 0; r < R && !stored; ++r) {
    LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) acc[r][v].store(c + r * ldc + v * L);
  }
  if (vmax != nullptr) {
    LONGATTN_UNROLL_BLOCK for (int r = 0; r < R; ++r) {
      V m = vmax[r];
      LONGATTN_UNROLL_BLOCK for (int v = 0; v < NV; ++v) m = max(m, acc[r][v]);
      vmax[r] = m;
    }
  }
}

// gemm_block for a run-time row count 1 ≤ rows ≤ kRows: the row tails get exact-size
// kernels, because a masked full-height kernel on a 1-row tail measured 6 % slower overall.
template <class V, int kRows, int NV, bool kBounded, bool kPairs = false>
inline void gemm_rows(int rows, const float* a, std::int64_t lda, const float* b,
                      std::int64_t ldb, std::int64_t depth, float* c, std::int64_t ldc,
                      Start start, const float* row_value, const float* diagonal, const std::int32_t* bounds,
                      std::int64_t bounds_column, V* vmax, V* vsum, float product_scale = 1.0f) {
  if constexpr (kRows >= 1) {
    if (rows == kRows) {
      gemm_block<V, kRows, NV, kBounded, kPairs>(a, lda, b, ldb, depth, c, ldc, start, row_value, diagonal, bounds,
                                                 bounds_column, vmax, vsum, product_scale);
    } else {
      gemm_rows<V, kRows - 1, NV, kBounded, kPairs>(rows, a, lda, b, ldb, depth, c, ldc, start, row_value, diagonal,
                                                    bounds, bounds_column, vmax, vsum, product_scale);
    }
  }
}

// gemm over all `rows` rows and `vectors` vectors of columns, in R × NV blocks (diagonal
// and bounds as gemm_block's, for row 0 and column 0).
// Between blocks, a few lines of the caller's prefetch queue are issued.
template <class V, int R, int NV, bool kBounded = false, bool kPairs = false>
inline void gemm_tile(std::int64_t rows, std::int64_t vectors, const float* a, std::int64_t lda,
                      const float* b, std::int64_t ldb, std::int64_t depth, float* c,
                      std::int64_t ldc, Start start, const float* row_value, const float* diagonal,
                      const std::int32_t* bounds, std::int64_t bounds_column, V* vmax, V* vsum,
                      PrefetchQueue& prefetch, float product_scale = 1.0f) {
  constexpr int L = V::lanes;
  std::int64_t col = 0;
  for (; col + NV <= vectors; col += NV) {
    for (std::int64_t r = 0; r < rows; r += R) {
      const int n = static_cast<int>(rows - r < R ? rows - r : R);
      gemm_rows<V, R, NV, kBounded, kPairs>(n, a + r * lda, lda, b + col * L, ldb, depth, c + r * ldc + col * L,
                                            ldc, start, row_value ? row_value + r : nullptr,
                                            diagonal ? diagonal + col * L - r : nullptr,
                                            bounds ? bounds + 2 * r : nullptr, bounds_column + col * L,
                                            vmax ? vmax + r : nullptr, vsum ? vsum + r : nullptr, product_scale);
      prefetch.issue(kPrefetchLinesPerBlock);
    }
  }
  if constexpr (NV > 1) {
    if (col < vectors) {
      gemm_tile<V, R, NV - 1, kBounded, kPairs>(rows, vectors - col, a, lda, b + col * L, ldb, depth,
                                                c + col * L, ldc, start, row_value,
                                                diagonal ? diagonal + col * L : nullptr, bounds,
                                                bounds_column + col * L, vmax, vsum, prefetch, product_scale);
    }
  }
}

// qk_tile, and (kPairs) its bf16 products: then d counts 4-byte pairs of q rows and panels,
// and the products are scaled by product_scale (gemm_block).
template <class V, int R, int NV, bool kPairs>
void qk_tile_of(const float* q, std::int64_t rows, std::int64_t d, const float* key_panels, std::int64_t first_key,
                std::int64_t keys, float* s, std::int64_t lds, const float* row_offset, const float* diagonals,
                const std::int32_t* row_bounds, float* row_max, float* row_sum, PrefetchQueue& prefetch,
                float product_scale) {
  constexpr int L = V::lanes;
  constexpr int panel_width = NV * L;
  V vmax[kMaxTileRows], vsum[kMaxTileRows];
  for (std::int64_t r = 0; row_max != nullptr && r < rows; ++r) {
    vmax[r] = V::broadcast(-std::numeric_limits<float>::infinity());
  }
  for (std::int64_t r = 0; row_sum != nullptr && r < rows; ++r) vsum[r] = V::zero();
  // Panels outside, rows inside: one key panel (d · panel_width floats) stays in L1 while
  // every row group of the query block passes over it. The first and last panel may be used
  // in part, a vector of keys at a time (the edges of a window or of the causal diagonal).
  const std::int64_t first = first_key / L, last = (first_key + keys) / L;  // in vectors
  for (std::int64_t v0 = first; v0 < last;) {
    const std::int64_t in_panel = v0 % NV, count = NV - in_panel < last - v0 ? NV - in_panel : last - v0;
    const float* panel = key_panels + v0 / NV * d * panel_width;
    const Start start = row_offset ? Start::row_value : Start::zero;
    const float* diagonal = diagonals ? diagonals + (rows - 1) + (v0 - first) * L : nullptr;
    if (row_bounds != nullptr && row_sum != nullptr) {
      gemm_tile<V, R, NV, true, kPairs>(rows, count, q, d, panel + in_panel * L, panel_width, d,
                                        s + (v0 - first) * L, lds, start, row_offset, diagonal, row_bounds,
                                        (v0 - first) * L, row_max ? vmax : nullptr, vsum, prefetch, product_scale);
    } else {
      gemm_tile<V, R, NV, false, kPairs>(rows, count, q, d, panel + in_panel * L, panel_width, d,
                                         s + (v0 - first) * L, lds, start, row_offset, diagonal, nullptr,
                                         kPairs ? (v0 - first) * L : 0, row_max ? vmax : nullptr,
                                         row_sum ? vsum : nullptr, prefetch, product_scale);
    }
    v0 += count;
  }
  for (std::int64_t r = 0; row_sum != nullptr && r < rows; ++r) row_sum[r] = vsum[r].reduce_add();
  if (row_max == nullptr) return;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float m = vmax[r].reduce_max();
    if (m > row_max[r]) row_max[r] = m;
  }
}

template <class V, int R, int NV>
void qk_tile(const float* q, std::int64_t rows, std::int64_t d, const float* key_panels, std::int64_t first_key,
             std::int64_t keys, float* s, std::int64_t lds, const float* row_offset, const float* diagonals,
             const std::int32_t* row_bounds, float* row_max, float* row_sum, PrefetchQueue& prefetch) {
  qk_tile_of<V, R, NV, false>(q, rows, d, key_panels, first_key, keys, s, lds, row_offset, diagonals, row_bounds,
                              row_max, row_sum, prefetch, 1.0f);
}

// Value rows per pass over the output rows: 32 KiB of them (128 rows at Dv = 64, 64 at 128)
// stay in L1 while every row group of the block reads them. Measured on the 96 × 256 tile
// (AVX-512, D = 64), PV ran at 0.84 / 0.93 / 0.98 / 0.89 of QKᵀ's rate for chunks of 32 / 64
// / 128 / 256 keys; in the engine at D = 128 (n = 16384), 32 / 64 / 128 keys gave 172 / 181
// / 174 GFLOP/s.
inline constexpr std::int64_t kPvChunkBytes = 32 << 10;

// pv_tile, and (kPairs) its bf16 products: then `keys` counts pairs of P rows and value pair
// rows (ldv 4-byte units apart), each chunk the same bytes.
template <class V, int R, int NV, bool kPairs = false>
void pv_tile(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t keys, const float* v,
             std::int64_t ldv, std::int64_t dv_padded, float* o, const float* row_scale, PrefetchQueue& prefetch) {
  const std::int64_t key_chunk =
      std::max<std::int64_t>(16, kPvChunkBytes / (dv_padded * static_cast<std::int64_t>(sizeof(float))));
  for (std::int64_t k0 = 0; k0 < keys; k0 += key_chunk) {
    const std::int64_t depth = keys - k0 < key_chunk ? keys - k0 : key_chunk;
    gemm_tile<V, R, NV, false, kPairs>(rows, dv_padded / V::lanes, p + k0, ldp, v + k0 * ldv, ldv, depth, o,
                                       dv_padded, k0 == 0 && row_scale != nullptr ? Start::load_scaled : Start::load,
                                       row_scale, nullptr, nullptr, 0, static_cast<V*>(nullptr),
                                       static_cast<V*>(nullptr), prefetch);
  }
}

// Vectors of a row the AVX-512 exp2 pass runs as straight-line code: unrolled this far, the
// compiler interleaves the polynomials of consecutive vectors (96 × 256 tile: 1.70 -> 1.59 ns
// per vector against a loop of two vectors per turn). AVX2, with 16 registers, gained nothing.
inline constexpr int kExp2SegmentVectors = 16;

template <class V>
void exp2_rows(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols, const float* row_max,
               float* row_sum) {
  constexpr int L = V::lanes;
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    const V m = V::broadcast(row_max[r]);
    // Two partial sums so consecutive vectors do not wait on one add chain.
    V sum0 = V::zero(), sum1 = V::zero();
    auto two_vectors = [&](std::int64_t j) {
      const V e0 = exp2(V::load(row + j) - m), e1 = exp2(V::load(row + j + L) - m);
      e0.store(row + j);
      e1.store(row + j + L);
      sum0 = sum0 + e0;
      sum1 = sum1 + e1;
    };
    std::int64_t j = 0;
    if constexpr (L == 16) {
      constexpr int segment = kExp2SegmentVectors * L;
      for (; j + segment <= cols; j += segment) {
#pragma GCC unroll 16
        for (int u = 0; u < segment; u += 2 * L) two_vectors(j + u);
      }
    }
    for (; j + 2 * L <= cols; j += 2 * L) two_vectors(j);
    for (; j < cols; j += L) {
      const V e = exp2(V::load(row + j) - m);
      e.store(row + j);
      sum0 = sum0 + e;
    }
    row_sum[r] = (sum0 + sum1).reduce_add();
  }
}

// s[r][c] += diagonals[c + rows - 1 - r]: a term that depends on c - r alone (a position
// bias: the key's offset from the query), read as one unaligned vector per row and column
// block; row_max[r] is raised to the row's largest biased score.
template <class V>
void add_diagonal_bias(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols,
                       const float* diagonals, float* row_max) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    const float* bias = diagonals + (rows - 1 - r);
    V vmax = V::broadcast(-std::numeric_limits<float>::infinity());
    for (std::int64_t j = 0; j < cols; j += V::lanes) {
      const V x = V::load(row + j) + V::load(bias + j);
      x.store(row + j);
      vmax = max(vmax, x);
    }
    const float m = vmax.reduce_max();
    if (m > row_max[r]) row_max[r] = m;
  }
}

// Lays `count` <= NV·lanes keys (rows of d contiguous features, `stride` floats apart) out,
// times `scale`, as one panel [d][NV·lanes], zero past count: lanes × lanes blocks
// transposed in registers.
// With `streamed`, the panel (vector-aligned) is written past the caches, for packed keys
// that outgrow L2 before they are read (packing a whole head's keys for a (256, 256) window
// took 5 % of its time with ordinary stores).
// kScaled = false: the 4-byte units are moved as they are, never read as numbers (bf16 pairs).
template <class V, int NV, bool kScaled = true>
void pack_key_panel(const float* keys, std::int64_t stride, std::int64_t count, std::int64_t d,
                    float scale, float* panel, bool streamed) {
  constexpr int L = V::lanes, P = NV * L;
  const V factor = V::broadcast(scale);
  std::int64_t f = 0;
  if constexpr (L > 1) {
    for (; f + L <= d; f += L) {
      for (int g = 0; g < NV; ++g) {
        V block[L];
        for (int i = 0; i < L; ++i) {
          const std::int64_t key = g * L + i;
          if constexpr (kScaled) {
            block[i] = key < count ? V::load(keys + key * stride + f) * factor : V::zero();
          } else {
            block[i] = key < count ? V::load(keys + key * stride + f) : V::zero();
          }
        }
        V::transpose(block);
        for (int i = 0; i < L; ++i) {
          if (streamed) {
            block[i].stream(panel + (f + i) * P + g * L);
          } else {
            block[i].store(panel + (f + i) * P + g * L);
          }
        }
      }
    }
  }
  for (; f < d; ++f) {
    for (std::int64_t key = 0; key < P; ++key) {
      if constexpr (kScaled) {
        panel[f * P + key] = key < count ? keys[key * stride + f] * scale : 0.0f;
      } else if (key < count) {
        std::memcpy(panel + f * P + key, keys + key * stride + f, sizeof(float));
      } else {
        panel[f * P + key] = 0.0f;
      }
    }
  }
  if (streamed) V::stream_fence();
}

// p = sigmoid(s + bias) = 1 / (1 + 2^(-(s + bias)·log2 e)) in place. The argument of exp2 is
// capped at 128, where 2^128 = +inf gives p = 0 exactly: also for masked scores (-inf). So it
// is finite, and exp2 needs no lane mask (the engine flushes denormals).
template <class V>
void sigmoid_rows(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols, float bias) {
  constexpr float kLog2e = 1.4426950408889634f;
  const V minus_log2e = V::broadcast(-kLog2e), shift = V::broadcast(-bias * kLog2e);
  const V one = V::broadcast(1.0f), cap = V::broadcast(128.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    for (std::int64_t j = 0; j < cols; j += V::lanes) {
      const V t = min(fma(V::load(row + j), minus_log2e, shift), cap);
      reciprocal_at_least_one(one + exp2_finite(t)).store(row + j);
    }
  }
}

// p = max(s, 0) in place (masked scores, -inf, become 0).
template <class V>
void relu_rows(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols) {
  const V zero = V::zero();
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = s + r * lds;
    for (std::int64_t j = 0; j < cols; j += V::lanes) max(V::load(row + j), zero).store(row + j);
  }
}

// tanh(x) = (1 - e) / (1 + e), e = e^(-2x) = 2^(-2x·log2 e): the exponent is capped at 126
// so that e stays finite and large negative x give -1.
template <class V>
inline V tanh_of(V x) {
  const V one = V::broadcast(1.0f);
  const V e = exp2(min(x * V::broadcast(-2.8853900817779268f), V::broadcast(126.0f)));
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

// S[i][:] += a[i] · b[:] over d rows of dv_padded floats: one key's φ(k) vᵀ in linear
// attention's state.
template <class V>
void rank1_update(float* state, std::int64_t d, std::int64_t dv_padded, const float* a, const float* b) {
  for (std::int64_t i = 0; i < d; ++i) {
    const V ai = V::broadcast(a[i]);
    float* row = state + i * dv_padded;
    for (std::int64_t c = 0; c < dv_padded; c += V::lanes) fma(ai, V::load(b + c), V::load(row + c)).store(row + c);
  }
}

// out[:] = Σ_i x[i] · S[i][:] over d rows of dv_padded floats: φ(q)ᵀ S.
template <class V>
void vector_matrix(const float* x, const float* state, std::int64_t d, std::int64_t dv_padded, float* out) {
  for (std::int64_t c = 0; c < dv_padded; c += V::lanes) {
    V acc = V::zero();
    for (std::int64_t i = 0; i < d; ++i) acc = fma(V::broadcast(x[i]), V::load(state + i * dv_padded + c), acc);
    acc.store(out + c);
  }
}

// out[r][c] = acc[r][c] · row_scale[r] for r < rows, c < cols. With `streamed`, rows of out
// that start on a vector boundary are written past the caches: the finished output is not
// read again here, and ordinary stores first read every line they miss (a (256, 256)
// window spent 3 % of its time in that read). Without, for rows the caller fetched ahead
// (PrefetchQueue): the stores hit the cache and the lines go to memory later, in the
// background, where streaming stores wait for the write-combining buffers to drain (the
// window's streamed output still took 3 % of its time).
template <class V>
void scale_rows(const float* acc, std::int64_t rows, std::int64_t lda, const float* row_scale, float* out,
                std::int64_t ldo, std::int64_t cols, bool streamed) {
  constexpr int L = V::lanes;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* in = acc + r * lda;
    float* row = out + r * ldo;
    const V scale = V::broadcast(row_scale[r]);
    std::int64_t c = 0;
    if (streamed && reinterpret_cast<std::uintptr_t>(row) % (L * sizeof(float)) == 0) {
      for (; c + L <= cols; c += L) (V::load(in + c) * scale).stream(row + c);
    }
    for (; c + L <= cols; c += L) (V::load(in + c) * scale).store(row + c);
    for (; c < cols; ++c) row[c] = in[c] * row_scale[r];
  }
  if (streamed) V::stream_fence();
}

// The decoding regime: a few query rows against keys and values where the caller keeps them,
// each key and value row read once, in order, so the hardware streams them from memory. The
// packed path's register blocks read rows in strips (a vector of each of 8 rows, or a line of
// each of 64): from memory that ran at half the rate of reading rows in order (5.5 against
// 10.9 GB/s on one core here). These loops are light: the rows' arrival is the limit.

// How far ahead of the row it works on qk_rows / pv_rows fetch rows: with several query rows
// the work per row of keys or values grows, the core's window of instructions covers fewer
// bytes ahead, and the loads wait on memory one line at a time. Nk = 65536, D = 128, 1
// thread, 4 runs alternated, medians of the rate k and v were read at, with / without:
// 8 / 32 / 64 query heads on 8 kv heads 11.4 / 9.9 / 5.4 against 8.7 / 5.8 / 4.3 GB/s.
inline constexpr std::int64_t kRowPrefetchBytes = 2048;

// Fetches the lines of `bytes` bytes from p on (a hint: addresses past the caller's rows are
// harmless, a prefetch never faults).
inline void prefetch_row(const void* p, std::int64_t bytes) {
  const char* line = reinterpret_cast<const char*>(p);
  for (std::int64_t offset = 0; offset < bytes; offset += 64) __builtin_prefetch(line + offset, 0, 3);
}

// The decoding kernels read the caller's key and value rows as fp32 or bf16 (E), widening
// bf16 as it is loaded: half the bytes from memory, where they are bound by reading them.
template <class V>
inline V load_row(const float* p) { return V::load(p); }
template <class V>
inline V load_row(const bf16* p) { return V::load_bf16(p); }
inline float widened(float x) { return x; }
inline float widened(bf16 x) { return static_cast<float>(x); }

// Query rows per pass of qk_row_pass, and accumulators per row: a key's dot product split in
// two chains so that its FMAs do not wait on one another (a key row of D = 128 is 16 AVX2
// vectors).
inline constexpr int kRowPassRows = 4;
inline constexpr int kRowChains = 2;

// s[r][c] = scale · q[r] · key c for r < R <= kRowPassRows, c < count, key by key, fetching
// key rows `ahead` rows on (none with ahead = 0). The accumulators in registers: with a
// run-time row count GCC kept them on the stack, and each FMA waited on a store and a load.
template <class V, int R, class E>
void qk_row_pass(const float* q, std::int64_t ldq, std::int64_t d, const E* keys, std::int64_t ldk,
                 std::int64_t count, float scale, float* s, std::int64_t lds, std::int64_t ahead) {
  constexpr int L = V::lanes, C = kRowChains;
  const std::int64_t row_bytes = d * static_cast<std::int64_t>(sizeof(E));
  for (std::int64_t c = 0; c < count; ++c) {
    const E* key = keys + c * ldk;
    if (ahead > 0) prefetch_row(key + ahead * ldk, row_bytes);
    V acc[R][C];
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < C; ++k) acc[r][k] = V::zero();
    std::int64_t f = 0;
    for (; f + C * L <= d; f += C * L) {
      for (int k = 0; k < C; ++k) {
        const V x = load_row<V>(key + f + k * L);
        for (int r = 0; r < R; ++r) acc[r][k] = fma(V::load(q + r * ldq + f + k * L), x, acc[r][k]);
      }
    }
    for (; f + L <= d; f += L) {
      const V x = load_row<V>(key + f);
      for (int r = 0; r < R; ++r) acc[r][0] = fma(V::load(q + r * ldq + f), x, acc[r][0]);
    }
    for (int r = 0; r < R; ++r) {
      V total = acc[r][0];
      for (int k = 1; k < C; ++k) total = total + acc[r][k];
      float dot = total.reduce_add();
      for (std::int64_t g = f; g < d; ++g) dot += q[r * ldq + g] * widened(key[g]);
      s[r * lds + c] = dot * scale;
    }
  }
}

// qk_row_pass for any number of rows, a pass over the keys per kRowPassRows rows.
template <class V, class E>
void qk_row_passes(const float* q, std::int64_t rows, std::int64_t ldq, std::int64_t d, const E* keys,
                   std::int64_t ldk, std::int64_t count, float scale, float* s, std::int64_t lds, std::int64_t ahead) {
  static_assert(kRowPassRows == 4);
  for (std::int64_t r0 = 0; r0 < rows; r0 += kRowPassRows) {
    const float* q0 = q + r0 * ldq;
    float* s0 = s + r0 * lds;
    switch (std::min<std::int64_t>(kRowPassRows, rows - r0)) {
      case 1: qk_row_pass<V, 1>(q0, ldq, d, keys, ldk, count, scale, s0, lds, ahead); break;
      case 2: qk_row_pass<V, 2>(q0, ldq, d, keys, ldk, count, scale, s0, lds, ahead); break;
      case 3: qk_row_pass<V, 3>(q0, ldq, d, keys, ldk, count, scale, s0, lds, ahead); break;
      default: qk_row_pass<V, 4>(q0, ldq, d, keys, ldk, count, scale, s0, lds, ahead); break;
    }
  }
}

// From this many rows on, qk_rows and pv_rows take several keys at a time: the row kernels
// are then bound by their loads and stores, not by memory (decoding with 8 query heads per
// kv head, D = 128: 113 -> 87 ms for 65536 keys, 1 thread). With fewer rows they take one key
// at a time, each key and value row read alone, in order: two rows read side by side ran at
// 0.89-1.06x there (2 and 4 rows), four at 0.7x (one row).
inline constexpr std::int64_t kKeyBlockRows = 8;

// The block qk_rows takes from kKeyBlockRows rows on: R query rows × K keys, R · K = lanes
// dot products whose lanes are summed at once (VecF32::sum_lanes), with K key loads and R
// query loads per R · K FMAs where qk_row_pass loads a query vector per FMA.
template <class V>
inline constexpr int kDotRows = V::lanes >= 4 ? 4 : 1;
template <class V>
inline constexpr int kDotKeys = V::lanes / kDotRows<V>;

// dots[r · K + k] (the sums over whole vectors) plus the depth's last d - f features, times
// scale, into s[r · lds + k]: apart from the block, whose registers it would crowd.
template <int R, int K, class E>
[[gnu::noinline]] void qk_dot_tail(const float* dots, const float* q, std::int64_t ldq, std::int64_t f, std::int64_t d,
                                   const E* keys, std::int64_t ldk, float scale, float* s, std::int64_t lds) {
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < K; ++k) {
      float dot = dots[r * K + k];
      for (std::int64_t g = f; g < d; ++g) dot += q[r * ldq + g] * widened(keys[k * ldk + g]);
      s[r * lds + k] = dot * scale;
    }
  }
}

// s[r · lds + k] = scale · q[r] · key k for r < R, k < K. Inlined in the caller's loop over
// keys, its products scaled as one vector: with the depth's tail inside and called per block
// it ran at 0.6x (8 query rows, D = 128, the rows in L1).
template <class V, int R, int K, class E>
[[gnu::always_inline]] inline void qk_dot_block(const float* q, std::int64_t ldq, std::int64_t d, const E* keys,
                                                std::int64_t ldk, float scale, float* s, std::int64_t lds) {
  constexpr int L = V::lanes;
  static_assert(R * K == L);
  V acc[R * K];
  for (int i = 0; i < R * K; ++i) acc[i] = V::zero();
  std::int64_t f = 0;
  for (; f + L <= d; f += L) {
    V x[K];
    for (int k = 0; k < K; ++k) x[k] = load_row<V>(keys + k * ldk + f);
    for (int r = 0; r < R; ++r) {
      const V a = V::load(q + r * ldq + f).in_register();  // one load for its K FMAs
      for (int k = 0; k < K; ++k) acc[r * K + k] = fma(a, x[k], acc[r * K + k]);
    }
  }
  alignas(64) float dots[L];
  if (f < d) {
    V::sum_lanes(acc).store(dots);
    qk_dot_tail<R, K>(dots, q, ldq, f, d, keys, ldk, scale, s, lds);
    return;
  }
  (V::sum_lanes(acc) * V::broadcast(scale)).store(dots);
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) s[r * lds + k] = dots[r * K + k];
}

// s[r][c] = scale · q[r] · key c for r < rows, c < keys; q rows ldq floats apart, keys rows of
// d contiguous elements (fp32 or bf16), ldk apart. Keys are read in order, each once for all
// rows.
template <class V, class E>
void qk_rows(const float* q, std::int64_t rows, std::int64_t ldq, std::int64_t d, const E* keys,
             std::int64_t ldk, std::int64_t count, float scale, float* s, std::int64_t lds) {
  constexpr int R = kDotRows<V>, K = kDotKeys<V>;
  const std::int64_t row_bytes = d * static_cast<std::int64_t>(sizeof(E));
  const std::int64_t ahead = std::max<std::int64_t>(1, kRowPrefetchBytes / row_bytes);
  if (rows < kKeyBlockRows) {  // a pass over the keys per four rows
    qk_row_passes<V>(q, rows, ldq, d, keys, ldk, count, scale, s, lds, ahead);
    return;
  }
  std::int64_t c = 0;
  for (; c + K <= count; c += K) {  // blocks of R rows × K keys, the rows left over after them
    for (int k = 0; k < K; ++k) prefetch_row(keys + (c + k + ahead) * ldk, row_bytes);
    std::int64_t r0 = 0;
    for (; r0 + R <= rows; r0 += R) {
      qk_dot_block<V, R, K>(q + r0 * ldq, ldq, d, keys + c * ldk, ldk, scale, s + r0 * lds + c, lds);
    }
    if (r0 < rows) {
      qk_row_passes<V>(q + r0 * ldq, rows - r0, ldq, d, keys + c * ldk, ldk, K, scale, s + r0 * lds + c, lds, 0);
    }
  }
  for (; c < count; ++c) {
    prefetch_row(keys + (c + ahead) * ldk, row_bytes);
    qk_row_passes<V>(q, rows, ldq, d, keys + c * ldk, ldk, 1, scale, s + c, lds, 0);
  }
}

// o[r][c] += Σ_{k < K} p[r][k] · v[k][c] for r < R, c < dv: K value rows (ldv floats apart)
// against R output rows, each output vector loaded and stored once per K keys, the R · K
// weights broadcast into registers once (a loop over the caller's rows broadcast them
// again for every vector: its stores might have changed p).
template <class V, int R, int K, class E>
inline void pv_key_block(const float* p, std::int64_t ldp, const E* v, std::int64_t ldv, std::int64_t dv,
                         float* o, std::int64_t ldo) {
  constexpr int L = V::lanes;
  V weight[R][K];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) weight[r][k] = V::broadcast(p[r * ldp + k]);
  std::int64_t c = 0;
  for (; c + L <= dv; c += L) {
    V x[K];
    for (int k = 0; k < K; ++k) x[k] = load_row<V>(v + k * ldv + c);
    for (int r = 0; r < R; ++r) {
      V acc = V::load(o + r * ldo + c);
      for (int k = 0; k < K; ++k) acc = fma(weight[r][k], x[k], acc);
      acc.store(o + r * ldo + c);
    }
  }
  for (; c < dv; ++c) {
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < K; ++k) o[r * ldo + c] += p[r * ldp + k] * widened(v[k * ldv + c]);
  }
}

// pv_key_block for any number of rows, in groups of G <= 4.
template <class V, int G, int K, class E>
inline void pv_rows_of_keys(const float* p, std::int64_t rows, std::int64_t ldp, const E* v, std::int64_t ldv,
                            std::int64_t dv, float* o, std::int64_t ldo) {
  static_assert(G >= 1 && G <= 4);
  for (std::int64_t r0 = 0; r0 < rows; r0 += G) {
    const float* p0 = p + r0 * ldp;
    float* o0 = o + r0 * ldo;
    switch (std::min<std::int64_t>(G, rows - r0)) {
      case 1: pv_key_block<V, 1, K>(p0, ldp, v, ldv, dv, o0, ldo); break;
      case 2: pv_key_block<V, std::min(G, 2), K>(p0, ldp, v, ldv, dv, o0, ldo); break;
      case 3: pv_key_block<V, std::min(G, 3), K>(p0, ldp, v, ldv, dv, o0, ldo); break;
      default: pv_key_block<V, G, K>(p0, ldp, v, ldv, dv, o0, ldo); break;
    }
  }
}

// The blocks pv_rows takes from kKeyBlockRows rows on: kPvRowsRows output rows × kPvRowsKeys
// value rows per pass, the weights in registers. AVX2 takes 2 × 4 (8 weights): against 4 × 2
// it stores each output vector once per 4 keys instead of 2: the blocks alone 1.45x as fast,
// pv_rows 1.16x, with the rows in L1 (8 query rows, Dv = 128; Zen 3). 4 × 4 would need 16
// weight registers of AVX2's 16.
template <class V>
inline constexpr int kPvRowsKeys = V::lanes >= 8 ? 4 : 1;
template <class V>
inline constexpr int kPvRowsRows = V::lanes == 8 ? 2 : 4;

// o[r][c] = o[r][c] · row_scale[r] + Σ_{j < count} p[r][j] · v[j][c] for r < rows, c < dv (no
// scaling when row_scale is null); value rows of dv contiguous elements (fp32 or bf16), ldv
// apart, at any alignment; o rows ldo floats apart (in L1: each pass's update of them waits
// on the last, while the next value rows stream in).
template <class V, class E>
void pv_rows(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const E* v,
             std::int64_t ldv, std::int64_t dv, float* o, std::int64_t ldo, const float* row_scale) {
  constexpr int G = kPvRowsRows<V>, K = kPvRowsKeys<V>;
  if (row_scale != nullptr) scale_rows<V>(o, rows, ldo, row_scale, o, ldo, dv, false);
  const std::int64_t row_bytes = dv * static_cast<std::int64_t>(sizeof(E));
  const std::int64_t ahead = std::max<std::int64_t>(1, kRowPrefetchBytes / row_bytes);
  std::int64_t j = 0;
  if (rows >= kKeyBlockRows) {
    for (; j + K <= count; j += K) {
      for (int k = 0; k < K; ++k) prefetch_row(v + (j + k + ahead) * ldv, row_bytes);
      pv_rows_of_keys<V, G, K>(p + j, rows, ldp, v + j * ldv, ldv, dv, o, ldo);
    }
  }
  for (; j < count; ++j) {
    prefetch_row(v + (j + ahead) * ldv, row_bytes);
    pv_rows_of_keys<V, 4, 1>(p + j, rows, ldp, v + j * ldv, ldv, dv, o, ldo);
  }
}

template <class V>
float max_of(const float* x, std::int64_t n) {
  V m = V::broadcast(-std::numeric_limits<float>::infinity());
  for (std::int64_t j = 0; j < n; j += V::lanes) m = max(m, V::load(x + j));
  return m.reduce_max();
}

// to[i] = from[i] widened to fp32, for i < n.
template <class V>
void widen_bf16(const bf16* from, std::int64_t n, float* to) {
  std::int64_t i = 0;
  for (; i + V::lanes <= n; i += V::lanes) V::load_bf16(from + i).store(to + i);
  for (; i < n; ++i) to[i] = static_cast<float>(from[i]);
}

template <class V>
void exp2_array(const float* x, float* y, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + V::lanes <= n; i += V::lanes) exp2(V::load(x + i)).store(y + i);
  for (; i < n; ++i) y[i] = exp2(VecF32<ScalarArch>::broadcast(x[i])).v;
}

template <class V, int kChains>
double fma_peak_probe(std::int64_t iterations) {
  // The operands come from volatiles: with constants the compiler proved 1·x + y == 1 for
  // the first chain and folded it away, so the probe counted 12 chains and ran 11 (its
  // "peak" read 9 % high).
  volatile float start = 1.0f, factor = 0.999999f, term = 1e-6f;
  V acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = V::broadcast(start + 0.001f * c);
  const V x = V::broadcast(factor);
  const V y = V::broadcast(term);
  for (std::int64_t i = 0; i < iterations; ++i) {
    for (int c = 0; c < kChains; ++c) acc[c] = fma(acc[c], x, y);
  }
  V sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = sum + acc[c];
  volatile float sink = sum.reduce_add();
  (void)sink;
  return 2.0 * V::lanes * kChains * static_cast<double>(iterations);
}

#if defined(__AVX512BF16__)
// The bf16 products (DESIGN.md §3): the register blocks of qk_tile and pv_tile on pairs of
// bf16, summed by vdpbf16ps. Query rows, key panels and value rows hold pairs along the depth
// of their product: q rows and key panels along the features, P rows and value rows along
// the keys, so each pair is one 4-byte lane, broadcast or loaded as the fp32 kernels do.

template <class V, int R, int NV>
void qk_tile_bf16(const bf16* q, std::int64_t rows, std::int64_t pairs, const bf16* key_panels, std::int64_t first_key,
                  std::int64_t keys, float* s, std::int64_t lds, float score_scale, const float* row_offset,
                  const float* diagonals, const std::int32_t* row_bounds, float* row_max, float* row_sum,
                  PrefetchQueue& prefetch) {
  qk_tile_of<V, R, NV, true>(reinterpret_cast<const float*>(q), rows, pairs,
                             reinterpret_cast<const float*>(key_panels), first_key, keys, s, lds, row_offset,
                             diagonals, row_bounds, row_max, row_sum, prefetch, score_scale);
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
  pv_tile<V, R, NV, true>(p, rows, ldp, pairs, reinterpret_cast<const float*>(value_pairs), dv_padded, dv_padded, o,
                          row_scale, prefetch);
}

// One key panel of bf16 pairs from `count` <= NV·lanes keys of 2·pairs contiguous bf16 (rows
// `stride` bf16 apart, stride even): 4-byte lanes transposed like fp32 features.
template <class V, int NV>
void pack_key_pair_panel(const bf16* keys, std::int64_t stride, std::int64_t count, std::int64_t pairs, bf16* panel,
                         bool streamed) {
  pack_key_panel<V, NV, false>(reinterpret_cast<const float*>(keys), stride / 2, count, pairs, 1.0f,
                               reinterpret_cast<float*>(panel), streamed);
}

// Value rows in pairs: out[t][c] = (v[2t][c], v[2t + 1][c]) for 2t < count (rows of dv
// contiguous bf16, `stride` apart), pair rows of dv_padded pairs; columns past dv and a
// missing second row are zeros. out holds (count + 1) / 2 pair rows.
template <class V>
void pack_value_pairs(const bf16* v, std::int64_t stride, std::int64_t count, std::int64_t dv, std::int64_t dv_padded,
                      bf16* out) {
  constexpr int L = V::lanes;
  static_assert(L == 16);
  for (std::int64_t t = 0; 2 * t < count; ++t) {
    const bf16* even = v + 2 * t * stride;
    const bf16* odd = 2 * t + 1 < count ? even + stride : nullptr;
    std::uint32_t* row = reinterpret_cast<std::uint32_t*>(out) + t * dv_padded;
    std::int64_t c = 0;
    for (; c + L <= dv; c += L) {
      const __m512i low = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(even + c)));
      const __m512i high = odd == nullptr ? _mm512_setzero_si512()
                                          : _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                                                  reinterpret_cast<const __m256i*>(odd + c))),
                                                              16);
      _mm512_storeu_si512(row + c, _mm512_or_si512(low, high));
    }
    for (; c < dv_padded; ++c) {
      const std::uint32_t low = c < dv ? even[c].bits : 0, high = c < dv && odd != nullptr ? odd[c].bits : 0;
      row[c] = low | high << 16;
    }
  }
}

template <class V, int R, int NV>
Bf16DotKernels make_bf16_dot_kernels() {
  return Bf16DotKernels{
      &qk_tile_bf16<V, R, NV>,
      &pv_tile_bf16<V, R, NV>,
      &pack_key_pair_panel<V, NV>,
      &pack_value_pairs<V>,
  };
}
#endif

// The table of one target. R × NV is the register block; kChains keeps every FMA pipe busy
// (pipes × latency independent accumulators).
template <class V, int R, int NV, int kChains>
KernelTable make_kernel_table(Isa isa, const char* name) {
  return KernelTable{
      isa,
      name,
      V::lanes,
      NV * V::lanes,
      &qk_tile<V, R, NV>,
      &pv_tile<V, R, NV>,
      &qk_rows<V, float>,
      &pv_rows<V, float>,
      &qk_rows<V, bf16>,
      &pv_rows<V, bf16>,
      &exp2_rows<V>,
      &add_diagonal_bias<V>,
      &sigmoid_rows<V>,
      &relu_rows<V>,
      &additive_tile<V, NV>,
      &rank1_update<V>,
      &vector_matrix<V>,
      &max_of<V>,
      &scale_rows<V>,
      &pack_key_panel<V, NV>,
      &widen_bf16<V>,
      &exp2_array<V>,
      nullptr,
      &fma_peak_probe<V, kChains>,
  };
}

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
