// The decoding kernels: a few query rows against keys and values where the caller keeps
// them, each key and value row read once, in order.
// Part of the kernels one target compiles (simd/kernel_table-inl.hpp): included once per
// target translation unit, inside that target's namespace.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "longattn/bf16.hpp"
#include "simd/elementwise_kernels-inl.hpp"
#include "simd/vec_f32.hpp"

// The row kernels' register blocks unrolled in full on every target: GCC otherwise parks
// their accumulators on the stack, and each FMA waits on a store and a load.
#ifndef LONGATTN_UNROLL_ROWS
#define LONGATTN_UNROLL_ROWS _Pragma("GCC unroll 16")
#endif

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// The decoding regime: a few query rows against keys and values where the caller keeps them,
// each key and value row read once, in order, so the hardware streams them from memory; the
// packed path's register blocks read rows in strips, at half that rate from memory
// (bench/TUNING.md "Decoding kernels"). These loops are light: the rows' arrival is the limit.

// How far ahead of the row it works on qk_rows fetches rows (and pv_rows from kKeyBlockRows
// rows on), and into which cache:
// with several query rows the work per row of keys or values grows, the core's window of
// instructions covers fewer bytes ahead, and the loads would wait on memory one line at a
// time. AVX-512 fetches into L2, far ahead, so that the rows stream while the kernels work;
// AVX2 does best with lines fetched into L1 a little ahead (bench/TUNING.md "Decoding
// kernels").
template <class V>
inline constexpr std::int64_t kRowPrefetchBytes = V::lanes >= 16 ? 8192 : 2048;
template <class V>
inline constexpr int kRowPrefetchLocality = V::lanes >= 16 ? 2 : 3;  // __builtin_prefetch's: 2 = L2, 3 = L1

// Fetches the lines of `bytes` bytes from p on (a hint: addresses past the caller's rows are
// harmless, a prefetch never faults).
template <class V>
inline void prefetch_row(const void* p, std::int64_t bytes) {
  const char* line = reinterpret_cast<const char*>(p);
  for (std::int64_t offset = 0; offset < bytes; offset += 64) {
    __builtin_prefetch(line + offset, 0, kRowPrefetchLocality<V>);
  }
}

// Rows `ahead` of the one a row kernel works on, as it fetches them.
template <class V>
inline std::int64_t rows_ahead(std::int64_t row_bytes) {
  return std::max<std::int64_t>(1, kRowPrefetchBytes<V> / row_bytes);
}

// The decoding kernels read the caller's key and value rows as fp32, bf16 or int8 (E),
// widening bf16 and int8 as they are loaded: a half or a quarter of the bytes from memory,
// where they are bound by reading them. An int8 row stands for its scale times its values:
// the kernels take the scales of its rows (`row_scales`, null for fp32 and bf16) and apply
// each to the row's dot products and weights.
template <class V>
inline V load_row(const float* p) { return V::load(p); }
template <class V>
inline V load_row(const bf16* p) { return V::load_bf16(p); }
template <class V>
inline V load_row(const std::int8_t* p) { return V::load_int8(p); }
inline float widened(float x) { return x; }
inline float widened(bf16 x) { return static_cast<float>(x); }
inline float widened(std::int8_t x) { return static_cast<float>(x); }
// Row j's scale: 1 without scales.
inline float row_scale_of(const float* row_scales, std::int64_t j) { return row_scales != nullptr ? row_scales[j] : 1.0f; }
// The scales of the rows from row j on (null without scales).
inline const float* row_scales_from(const float* row_scales, std::int64_t j) {
  return row_scales != nullptr ? row_scales + j : nullptr;
}

// Query rows per pass of qk_row_pass, and accumulators per row: a key's dot product split in
// two chains so that its FMAs do not wait on one another (a key row of D = 128 is 16 AVX2
// vectors).
inline constexpr int kRowPassRows = 4;
inline constexpr int kRowChains = 2;

// totals[r · RS + k] = the lanes of q[r] · key k over its whole vectors, for r < R and KP keys
// ldk apart (RS >= KP); returns the features they cover (the rest, d % lanes, is left to the
// caller). Two keys at once load each query vector once for both.
template <class V, int R, int KP, int RS, class E>
[[gnu::always_inline]] inline std::int64_t row_dot_lanes(const float* q, std::int64_t ldq, std::int64_t d, const E* key,
                                                         std::int64_t ldk, V* totals) {
  constexpr int L = V::lanes, C = KP == 1 ? kRowChains : 1;
  V acc[R][KP][C];
  LONGATTN_UNROLL_ROWS for (int r = 0; r < R; ++r) {
    LONGATTN_UNROLL_ROWS for (int k = 0; k < KP; ++k) {
      LONGATTN_UNROLL_ROWS for (int c = 0; c < C; ++c) acc[r][k][c] = V::zero();
    }
  }
  std::int64_t f = 0;
  for (; f + C * L <= d; f += C * L) {
    LONGATTN_UNROLL_ROWS for (int c = 0; c < C; ++c) {
      V x[KP];
      LONGATTN_UNROLL_ROWS for (int k = 0; k < KP; ++k) x[k] = load_row<V>(key + k * ldk + f + c * L);
      LONGATTN_UNROLL_ROWS for (int r = 0; r < R; ++r) {
        const V a = V::load(q + r * ldq + f + c * L).in_register();  // one load for its KP FMAs
        LONGATTN_UNROLL_ROWS for (int k = 0; k < KP; ++k) acc[r][k][c] = fma(a, x[k], acc[r][k][c]);
      }
    }
  }
  for (; f + L <= d; f += L) {
    V x[KP];
    LONGATTN_UNROLL_ROWS for (int k = 0; k < KP; ++k) x[k] = load_row<V>(key + k * ldk + f);
    LONGATTN_UNROLL_ROWS for (int r = 0; r < R; ++r) {
      const V a = V::load(q + r * ldq + f).in_register();
      LONGATTN_UNROLL_ROWS for (int k = 0; k < KP; ++k) acc[r][k][0] = fma(a, x[k], acc[r][k][0]);
    }
  }
  LONGATTN_UNROLL_ROWS for (int r = 0; r < R; ++r) {
    LONGATTN_UNROLL_ROWS for (int k = 0; k < KP; ++k) {
      totals[r * RS + k] = acc[r][k][0];
      LONGATTN_UNROLL_ROWS for (int c = 1; c < C; ++c) totals[r * RS + k] = totals[r * RS + k] + acc[r][k][c];
    }
  }
  return f;
}

// q[r] · key over features [f, d): the depth's tail past whole vectors.
template <class E>
inline float dot_tail(const float* q, const E* key, std::int64_t f, std::int64_t d) {
  float dot = 0.0f;
  for (; f < d; ++f) dot += q[f] * widened(key[f]);
  return dot;
}

// Keys whose R rows of dot products qk_row_pass finishes together on AVX-512: their R · keys
// vectors of lanes summed by one VecF32::sum_lanes, where a reduction per dot product cost as
// much as the products at R = 4 (three rows take a fourth's place). AVX2's 16 registers do
// not hold the sums beside the accumulators: it reduces each dot product alone (0).
template <class V, int R>
inline constexpr int kRowsSummedKeys = V::lanes >= 16 ? V::lanes / (R == 3 ? 4 : R) : 0;

// Keys whose dot products qk_row_pass takes side by side when it sums keys together (every
// kRowsSummedKeys is a multiple of it): each query vector loaded once for both.
inline constexpr int kPairedKeys = 2;

// s[r][k] = scale · key_scales[k] · (q[r] · key k) for r < R and K keys from the lanes to sum,
// totals[r · K + k], over features [0, f), and the depth's last d - f features (no key scales
// when null). A row's K sums lie side by side: scaled as one vector and each row's stored as
// one run, where a scalar multiply and store per dot product cost a fourth of the pass
// (bench/TUNING.md "Decoding kernels").
template <class V, int R, int K, class E>
[[gnu::always_inline]] inline void store_summed_keys(const V* totals, const float* q, std::int64_t ldq, std::int64_t f,
                                                     std::int64_t d, const E* keys, std::int64_t ldk,
                                                     const float* key_scales, float scale, float* s, std::int64_t lds) {
  constexpr int L = V::lanes;
  alignas(64) float dots[L];
  if (f < d) {  // the depth's tail, a dot product at a time
    V::sum_lanes(totals).store(dots);
    for (int r = 0; r < R; ++r) {
      for (int k = 0; k < K; ++k) {
        const float tail = dot_tail(q + r * ldq, keys + k * ldk, f, d);
        s[r * lds + k] = (dots[r * K + k] + tail) * scale * row_scale_of(key_scales, k);
      }
    }
    return;
  }
  V sums = V::sum_lanes(totals) * V::broadcast(scale);
  if (key_scales != nullptr) {
    alignas(64) float factors[L];
    for (int r = 0; r < R; ++r) std::memcpy(factors + r * K, key_scales, K * sizeof(float));
    sums = sums * V::load(factors);
  }
  sums.store(dots);
  for (int r = 0; r < R; ++r) std::memcpy(s + r * lds, dots + r * K, K * sizeof(float));
}

// s[r][c] = scale · q[r] · key c for r < R <= kRowPassRows, c < count, key by key, fetching
// key rows `ahead` rows on (none with ahead = 0). Each key row is read once, whole and in
// order, so that the hardware streams them from memory; the accumulators in registers (with
// a run-time row count GCC kept them on the stack, and each FMA waited on a store and a load).
template <class V, int R, class E>
void qk_row_pass(const float* q, std::int64_t ldq, std::int64_t d, const E* keys, std::int64_t ldk,
                 const float* key_scales, std::int64_t count, float scale, float* s, std::int64_t lds,
                 std::int64_t ahead) {
  constexpr int L = V::lanes, K = kRowsSummedKeys<V, R>;
  const std::int64_t row_bytes = d * static_cast<std::int64_t>(sizeof(E));
  std::int64_t c = 0;
  for (; K > 0 && c + K <= count; c += K) {
    V totals[L];  // totals[r · K + k]: key c + k against row r (three rows leave a fourth's zeros)
    if constexpr (R * K != L) {
      for (int i = 0; i < L; ++i) totals[i] = V::zero();
    }
    std::int64_t f = 0;
    LONGATTN_UNROLL_ROWS for (int k = 0; k < K; k += kPairedKeys) {
      const E* key = keys + (c + k) * ldk;
      for (int next = 0; ahead > 0 && next < kPairedKeys; ++next) prefetch_row<V>(key + (ahead + next) * ldk, row_bytes);
      f = row_dot_lanes<V, R, kPairedKeys, K>(q, ldq, d, key, ldk, totals + k);
    }
    store_summed_keys<V, R, K>(totals, q, ldq, f, d, keys + c * ldk, ldk, row_scales_from(key_scales, c), scale,
                               s + c, lds);
  }
  for (; c < count; ++c) {  // the last keys, each dot product reduced alone
    const E* key = keys + c * ldk;
    if (ahead > 0) prefetch_row<V>(key + ahead * ldk, row_bytes);
    V totals[R];
    const std::int64_t f = row_dot_lanes<V, R, 1, 1>(q, ldq, d, key, ldk, totals);
    for (int r = 0; r < R; ++r) {
      s[r * lds + c] = (totals[r].reduce_add() + dot_tail(q + r * ldq, key, f, d)) * scale * row_scale_of(key_scales, c);
    }
  }
}

// qk_row_pass for any number of rows, a pass over the keys per kRowPassRows rows.
template <class V, class E>
void qk_row_passes(const float* q, std::int64_t rows, std::int64_t ldq, std::int64_t d, const E* keys,
                   std::int64_t ldk, const float* key_scales, std::int64_t count, float scale, float* s,
                   std::int64_t lds, std::int64_t ahead) {
  static_assert(kRowPassRows == 4);
  for (std::int64_t r0 = 0; r0 < rows; r0 += kRowPassRows) {
    const float* q0 = q + r0 * ldq;
    float* s0 = s + r0 * lds;
    switch (std::min<std::int64_t>(kRowPassRows, rows - r0)) {
      case 1: qk_row_pass<V, 1>(q0, ldq, d, keys, ldk, key_scales, count, scale, s0, lds, ahead); break;
      case 2: qk_row_pass<V, 2>(q0, ldq, d, keys, ldk, key_scales, count, scale, s0, lds, ahead); break;
      case 3: qk_row_pass<V, 3>(q0, ldq, d, keys, ldk, key_scales, count, scale, s0, lds, ahead); break;
      default: qk_row_pass<V, 4>(q0, ldq, d, keys, ldk, key_scales, count, scale, s0, lds, ahead); break;
    }
  }
}

// From this many rows on, qk_rows and pv_rows take several keys at a time: the row kernels
// are then bound by their loads and stores, not by memory. With fewer rows they take one key
// at a time, each key and value row read alone, in order (bench/TUNING.md "Decoding kernels").
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
                                   const E* keys, std::int64_t ldk, const float* key_scales, float scale, float* s,
                                   std::int64_t lds) {
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < K; ++k) {
      float dot = dots[r * K + k];
      for (std::int64_t g = f; g < d; ++g) dot += q[r * ldq + g] * widened(keys[k * ldk + g]);
      s[r * lds + k] = dot * scale * row_scale_of(key_scales, k);
    }
  }
}

// s[r · lds + k] = scale · q[r] · key k for r < R, k < K. Inlined in the caller's loop over
// keys, its products scaled as one vector, the depth's tail outside (bench/TUNING.md
// "Decoding kernels").
template <class V, int R, int K, class E>
[[gnu::always_inline]] inline void qk_dot_block(const float* q, std::int64_t ldq, std::int64_t d, const E* keys,
                                                std::int64_t ldk, const float* key_scales, float scale, float* s,
                                                std::int64_t lds) {
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
    qk_dot_tail<R, K>(dots, q, ldq, f, d, keys, ldk, key_scales, scale, s, lds);
    return;
  }
  (V::sum_lanes(acc) * V::broadcast(scale)).store(dots);
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) s[r * lds + k] = dots[r * K + k] * row_scale_of(key_scales, k);
}

// s[r][c] = scale · key_scales[c] · q[r] · key c for r < rows, c < keys (no key scales when
// null); q rows ldq floats apart, keys rows of d contiguous elements (fp32, bf16 or int8),
// ldk apart. Keys are read in order, each once for all rows.
template <class V, class E>
void qk_scaled_rows(const float* q, std::int64_t rows, std::int64_t ldq, std::int64_t d, const E* keys,
                    std::int64_t ldk, const float* key_scales, std::int64_t count, float scale, float* s,
                    std::int64_t lds) {
  constexpr int R = kDotRows<V>, K = kDotKeys<V>;
  const std::int64_t row_bytes = d * static_cast<std::int64_t>(sizeof(E));
  const std::int64_t ahead = rows_ahead<V>(row_bytes);
  if (rows < kKeyBlockRows) {  // a pass over the keys per four rows
    qk_row_passes<V>(q, rows, ldq, d, keys, ldk, key_scales, count, scale, s, lds, ahead);
    return;
  }
  std::int64_t c = 0;
  for (; c + K <= count; c += K) {  // blocks of R rows × K keys, the rows left over after them
    for (int k = 0; k < K; ++k) prefetch_row<V>(keys + (c + k + ahead) * ldk, row_bytes);
    std::int64_t r0 = 0;
    for (; r0 + R <= rows; r0 += R) {
      qk_dot_block<V, R, K>(q + r0 * ldq, ldq, d, keys + c * ldk, ldk, row_scales_from(key_scales, c), scale,
                            s + r0 * lds + c, lds);
    }
    if (r0 < rows) {
      qk_row_passes<V>(q + r0 * ldq, rows - r0, ldq, d, keys + c * ldk, ldk, row_scales_from(key_scales, c), K, scale,
                       s + r0 * lds + c, lds, 0);
    }
  }
  for (; c < count; ++c) {
    prefetch_row<V>(keys + (c + ahead) * ldk, row_bytes);
    qk_row_passes<V>(q, rows, ldq, d, keys + c * ldk, ldk, row_scales_from(key_scales, c), 1, scale, s + c, lds, 0);
  }
}

// The table's entries: fp32 and bf16 rows, and int8 rows with their scales.
template <class V, class E>
void qk_rows(const float* q, std::int64_t rows, std::int64_t ldq, std::int64_t d, const E* keys, std::int64_t ldk,
             std::int64_t count, float scale, float* s, std::int64_t lds) {
  qk_scaled_rows<V>(q, rows, ldq, d, keys, ldk, nullptr, count, scale, s, lds);
}
template <class V>
void qk_rows_int8(const float* q, std::int64_t rows, std::int64_t ldq, std::int64_t d, const std::int8_t* keys,
                  std::int64_t ldk, const float* key_scales, std::int64_t count, float scale, float* s,
                  std::int64_t lds) {
  qk_scaled_rows<V>(q, rows, ldq, d, keys, ldk, key_scales, count, scale, s, lds);
}

// o[r][c] += Σ_{k < K} p[r][k] · v[k][c] for r < R, c < dv: K value rows (ldv floats apart)
// against R output rows, each output vector loaded and stored once per K keys, the R · K
// weights broadcast into registers once (a loop over the caller's rows broadcast them
// again for every vector: its stores might have changed p).
template <class V, int R, int K, class E>
inline void pv_key_block(const float* p, std::int64_t ldp, const E* v, std::int64_t ldv, const float* value_scales,
                         std::int64_t dv, float* o, std::int64_t ldo) {
  constexpr int L = V::lanes;
  V weight[R][K];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < K; ++k) weight[r][k] = V::broadcast(p[r * ldp + k] * row_scale_of(value_scales, k));
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
      for (int k = 0; k < K; ++k) {
        o[r * ldo + c] += p[r * ldp + k] * row_scale_of(value_scales, k) * widened(v[k * ldv + c]);
      }
  }
}

// pv_key_block for any number of rows, in groups of G <= 4.
template <class V, int G, int K, class E>
inline void pv_rows_of_keys(const float* p, std::int64_t rows, std::int64_t ldp, const E* v, std::int64_t ldv,
                            const float* value_scales, std::int64_t dv, float* o, std::int64_t ldo) {
  static_assert(G >= 1 && G <= 4);
  for (std::int64_t r0 = 0; r0 < rows; r0 += G) {
    const float* p0 = p + r0 * ldp;
    float* o0 = o + r0 * ldo;
    switch (std::min<std::int64_t>(G, rows - r0)) {
      case 1: pv_key_block<V, 1, K>(p0, ldp, v, ldv, value_scales, dv, o0, ldo); break;
      case 2: pv_key_block<V, std::min(G, 2), K>(p0, ldp, v, ldv, value_scales, dv, o0, ldo); break;
      case 3: pv_key_block<V, std::min(G, 3), K>(p0, ldp, v, ldv, value_scales, dv, o0, ldo); break;
      default: pv_key_block<V, G, K>(p0, ldp, v, ldv, value_scales, dv, o0, ldo); break;
    }
  }
}

// The blocks pv_rows takes from kKeyBlockRows rows on: kPvRowsRows output rows × kPvRowsKeys
// value rows per pass, the weights in registers; AVX2 takes 2 × 4, storing each output vector
// once per 4 keys, within its 16 registers (bench/TUNING.md "Decoding kernels").
template <class V>
inline constexpr int kPvRowsKeys = V::lanes >= 8 ? 4 : 1;
template <class V>
inline constexpr int kPvRowsRows = V::lanes == 8 ? 2 : 4;

// Whether P·V keeps blocks of o in registers for fewer than kKeyBlockRows rows: on AVX-512.
// AVX2's column blocks, a quarter of a row of D = 128, ran faster from L2 but slower from
// memory than a key at a time (bench/TUNING.md "Decoding kernels").
template <class V>
inline constexpr bool kPvRowsInRegisters = V::lanes >= 16;

// Output vectors the few-row P·V keeps in registers over all its keys (16 of AVX-512's 32),
// and the widest column block, whose value vectors take registers of their own: a row of
// D = 128 for two rows at once.
inline constexpr int kPvAccumulators = 16;
inline constexpr int kPvColumnVectors = 8;

// Whether the few-row P·V fetches value rows ahead (on its first pass over them): int8 rows,
// whose widening leaves the hardware's streams behind; fp32 and bf16 rows stream faster
// without (bench/TUNING.md "Decoding kernels").
template <class E>
inline constexpr bool kPvFetchesRows = std::is_same_v<E, std::int8_t>;

// o[r][c0 + c] += Σ_{j < count} p[r][j] · v[j][c0 + c] for r < R, c < CB vectors, the block
// of o in registers from the first key to the last: each value vector loaded once for R
// FMAs, and no output stored per key (stored per key, the stores bound the loop). `fetch`:
// rows `ahead` rows on are fetched, whole, in order.
template <class V, int R, int CB, class E>
void pv_register_block(const float* p, std::int64_t ldp, std::int64_t count, const E* v, std::int64_t ldv,
                       std::int64_t c0, float* o, std::int64_t ldo, std::int64_t ahead, std::int64_t row_bytes,
                       bool fetch) {
  constexpr int L = V::lanes;
  V acc[R][CB];
  LONGATTN_UNROLL_ROWS for (int r = 0; r < R; ++r) {
    LONGATTN_UNROLL_ROWS for (int i = 0; i < CB; ++i) acc[r][i] = V::load(o + r * ldo + c0 + i * L);
  }
  for (std::int64_t j = 0; j < count; ++j) {
    const E* row = v + j * ldv + c0;
    if (fetch) prefetch_row<V>(v + (j + ahead) * ldv, row_bytes);
    V x[CB];
    LONGATTN_UNROLL_ROWS for (int i = 0; i < CB; ++i) x[i] = load_row<V>(row + i * L).in_register();
    LONGATTN_UNROLL_ROWS for (int r = 0; r < R; ++r) {
      const V weight = V::broadcast(p[r * ldp + j]);
      LONGATTN_UNROLL_ROWS for (int i = 0; i < CB; ++i) acc[r][i] = fma(weight, x[i], acc[r][i]);
    }
  }
  LONGATTN_UNROLL_ROWS for (int r = 0; r < R; ++r) {
    LONGATTN_UNROLL_ROWS for (int i = 0; i < CB; ++i) acc[r][i].store(o + r * ldo + c0 + i * L);
  }
}

// pv_register_block over every row, CB vectors of columns from c0: as many rows a pass as
// the registers hold, each pass over all the value rows (from the cache after the first).
template <class V, int CB, class E>
void pv_column_block(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const E* v,
                     std::int64_t ldv, std::int64_t c0, float* o, std::int64_t ldo, std::int64_t ahead,
                     std::int64_t row_bytes, bool fetch) {
  constexpr int RM = std::min(kRowPassRows, kPvAccumulators / CB);
  for (std::int64_t r0 = 0; r0 < rows; r0 += RM, fetch = false) {
    const float* p0 = p + r0 * ldp;
    float* o0 = o + r0 * ldo;
    const auto pass = [&]<int R>() {
      pv_register_block<V, R, CB>(p0, ldp, count, v, ldv, c0, o0, ldo, ahead, row_bytes, fetch);
    };
    switch (std::min<std::int64_t>(RM, rows - r0)) {
      case 1: pass.template operator()<1>(); break;
      case 2: if constexpr (RM >= 2) pass.template operator()<2>(); break;
      case 3: if constexpr (RM >= 3) pass.template operator()<3>(); break;
      default: pass.template operator()<RM>(); break;
    }
  }
}

// P·V for fewer than kKeyBlockRows rows, the weights p as they are: the whole vectors of each
// row in column blocks as wide as the registers allow (a row of D = 128 in one block of
// AVX-512 for two rows), then the columns past them. int8 rows, whose widening costs as much
// as their FMAs, take 4-vector blocks from three rows on: each value vector widened once for
// all four rows, not once per two (bench/TUNING.md "Decoding kernels").
template <class V, class E>
void pv_few_rows_of_weights(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const E* v,
                            std::int64_t ldv, std::int64_t dv, float* o, std::int64_t ldo) {
  constexpr int L = V::lanes;
  const std::int64_t row_bytes = dv * static_cast<std::int64_t>(sizeof(E));
  const std::int64_t ahead = rows_ahead<V>(row_bytes);
  std::int64_t c0 = 0;
  bool fetch = kPvFetchesRows<E>;
  const auto block = [&]<int CB>() {
    for (; c0 + CB * L <= dv; c0 += CB * L, fetch = false) {
      pv_column_block<V, CB>(p, rows, ldp, count, v, ldv, c0, o, ldo, ahead, row_bytes, fetch);
    }
  };
  static_assert(kPvColumnVectors == 8);
  if (std::is_same_v<E, std::int8_t> && rows > 2) block.template operator()<4>();
  block.template operator()<8>();
  block.template operator()<4>();
  block.template operator()<2>();
  block.template operator()<1>();
  for (std::int64_t j = 0; c0 < dv && j < count; ++j) {
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = c0; c < dv; ++c) o[r * ldo + c] += p[r * ldp + j] * widened(v[j * ldv + c]);
    }
  }
}

// Keys whose weights P·V scales on the stack at a time (value rows with scales): each key's
// weight is then p · scale, read as it is broadcast into the FMAs.
inline constexpr std::int64_t kScaledWeightKeys = 256;

// pv_few_rows_of_weights for value rows with scales (null: none): the weights p[r][j] ·
// value_scales[j], a vector of keys at a time.
template <class V, class E>
void pv_few_rows(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const E* v,
                 std::int64_t ldv, const float* value_scales, std::int64_t dv, float* o, std::int64_t ldo) {
  if (value_scales == nullptr) {
    pv_few_rows_of_weights<V>(p, rows, ldp, count, v, ldv, dv, o, ldo);
    return;
  }
  constexpr int L = V::lanes;
  alignas(64) float weights[kKeyBlockRows * kScaledWeightKeys];  // rows < kKeyBlockRows
  for (std::int64_t j0 = 0; j0 < count; j0 += kScaledWeightKeys) {
    const std::int64_t n = std::min(kScaledWeightKeys, count - j0);
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* from = p + r * ldp + j0;
      float* to = weights + r * kScaledWeightKeys;
      std::int64_t j = 0;
      for (; j + L <= n; j += L) (V::load(from + j) * V::load(value_scales + j0 + j)).store(to + j);
      for (; j < n; ++j) to[j] = from[j] * value_scales[j0 + j];
    }
    pv_few_rows_of_weights<V>(weights, rows, kScaledWeightKeys, n, v + j0 * ldv, ldv, dv, o, ldo);
  }
}

// o[r][c] = o[r][c] · row_scale[r] + Σ_{j < count} p[r][j] · value_scales[j] · v[j][c] for r <
// rows, c < dv (no scaling when row_scale or value_scales is null); value rows of dv
// contiguous elements (fp32, bf16 or int8), ldv apart, at any alignment; o rows ldo floats
// apart. On AVX-512 few rows keep blocks of o in registers over all the keys; otherwise, and
// from kKeyBlockRows rows on, o stays in L1, each pass's update of it waiting on the last
// while the next value rows stream in.
template <class V, class E>
void pv_scaled_rows(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const E* v,
                    std::int64_t ldv, const float* value_scales, std::int64_t dv, float* o, std::int64_t ldo,
                    const float* row_scale) {
  constexpr int G = kPvRowsRows<V>, K = kPvRowsKeys<V>;
  if (row_scale != nullptr) scale_rows<V>(o, rows, ldo, row_scale, o, ldo, dv, false);
  if constexpr (kPvRowsInRegisters<V>) {
    if (rows < kKeyBlockRows) {
      pv_few_rows<V>(p, rows, ldp, count, v, ldv, value_scales, dv, o, ldo);
      return;
    }
  }
  const std::int64_t row_bytes = dv * static_cast<std::int64_t>(sizeof(E));
  const std::int64_t ahead = rows_ahead<V>(row_bytes);
  std::int64_t j = 0;
  for (; rows >= kKeyBlockRows && j + K <= count; j += K) {
    for (int k = 0; k < K; ++k) prefetch_row<V>(v + (j + k + ahead) * ldv, row_bytes);
    pv_rows_of_keys<V, G, K>(p + j, rows, ldp, v + j * ldv, ldv, row_scales_from(value_scales, j), dv, o, ldo);
  }
  for (; j < count; ++j) {
    prefetch_row<V>(v + (j + ahead) * ldv, row_bytes);
    pv_rows_of_keys<V, 4, 1>(p + j, rows, ldp, v + j * ldv, ldv, row_scales_from(value_scales, j), dv, o, ldo);
  }
}

// The table's entries: fp32 and bf16 rows, and int8 rows with their scales.
template <class V, class E>
void pv_rows(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const E* v, std::int64_t ldv,
             std::int64_t dv, float* o, std::int64_t ldo, const float* row_scale) {
  pv_scaled_rows<V>(p, rows, ldp, count, v, ldv, nullptr, dv, o, ldo, row_scale);
}
template <class V>
void pv_rows_int8(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const std::int8_t* v,
                  std::int64_t ldv, const float* value_scales, std::int64_t dv, float* o, std::int64_t ldo,
                  const float* row_scale) {
  pv_scaled_rows<V>(p, rows, ldp, count, v, ldv, value_scales, dv, o, ldo, row_scale);
}

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
