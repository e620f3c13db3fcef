// The decoding kernels: a few query rows against keys and values where the caller keeps
// them, each key and value row read once, in order.
// Part of the kernels one target compiles (simd/kernel_table-inl.hpp): included once per
// target translation unit, inside that target's namespace.
#pragma once

#include <cstdint>

#include "longattn/bf16.hpp"
#include "simd/elementwise_kernels-inl.hpp"
#include "simd/vec_f32.hpp"

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// The decoding regime: a few query rows against keys and values where the caller keeps them,
// each key and value row read once, in order, so the hardware streams them from memory; the
// packed path's register blocks read rows in strips, at half that rate from memory
// (bench/TUNING.md "Decoding kernels"). These loops are light: the rows' arrival is the limit.

// How far ahead of the row it works on qk_rows / pv_rows fetch rows: with several query rows
// the work per row of keys or values grows, the core's window of instructions covers fewer
// bytes ahead, and the loads would wait on memory one line at a time (bench/TUNING.md
// "Decoding kernels").
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
// keys, its products scaled as one vector, the depth's tail outside (bench/TUNING.md
// "Decoding kernels").
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
// value rows per pass, the weights in registers; AVX2 takes 2 × 4, storing each output vector
// once per 4 keys, within its 16 registers (bench/TUNING.md "Decoding kernels").
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

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
