// The element types attention() reads its inputs in (fp32, bf16), as the fp32 the kernels
// compute in. bf16 widens exactly: the engine runs on the same numbers a caller would get
// converting the tensors first, without an fp32 copy of them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "longattn/bf16.hpp"
#include "longattn/tensor_view.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::engine {

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) { return static_cast<float>(x); }

// Whether the kernels can read rows of T where they lie (fp32), rather than widened copies.
template <class T>
inline constexpr bool kReadInPlace = std::is_same_v<T, float>;

// to[i] = from[i] as fp32 for i < n (contiguous).
inline void widen(const simd::KernelTable&, const float* from, std::int64_t n, float* to) { std::copy_n(from, n, to); }
inline void widen(const simd::KernelTable& kernels, const bf16* from, std::int64_t n, float* to) {
  kernels.elementwise.widen_bf16(from, n, to);
}

// to[0 .. n) = the n features of one row, `stride` elements apart, as fp32.
template <class T>
void widen_row(const simd::KernelTable& kernels, const T* from, std::int64_t stride, std::int64_t n, float* to) {
  if (stride == 1) {
    widen(kernels, from, n, to);
  } else {
    for (std::int64_t i = 0; i < n; ++i) to[i] = to_float(from[i * stride]);
  }
}

// out = `rows` (out's shape, contiguous fp32) rounded to the nearest bf16 (ties to even), in
// out's layout: a bf16 output, written whole once its fp32 result is complete.
inline void write_rounded(const float* rows, const HeadsView<bf16>& out) {
  const std::int64_t heads = out.shape[1], n = out.shape[2], width = out.shape[3];
  for (std::int64_t r = 0; r < out.shape[0] * heads * n; ++r) {
    const std::int64_t b = r / (heads * n), h = r / n % heads, i = r % n;
    bf16* to = out.data + b * out.strides[0] + h * out.strides[1] + i * out.strides[2];
    for (std::int64_t c = 0; c < width; ++c) to[c * out.strides[3]] = bf16(rows[r * width + c]);
  }
}

// The decoding kernels on the caller's key and value rows (KernelTable::qk_rows, pv_rows) in
// their element type.
inline void qk_rows(const simd::KernelTable& kernels, const float* q, std::int64_t rows, std::int64_t ldq,
                    std::int64_t d, const float* keys, std::int64_t ldk, std::int64_t count, float scale, float* s,
                    std::int64_t lds) {
  kernels.rows.qk_rows(q, rows, ldq, d, keys, ldk, count, scale, s, lds);
}
inline void qk_rows(const simd::KernelTable& kernels, const float* q, std::int64_t rows, std::int64_t ldq,
                    std::int64_t d, const bf16* keys, std::int64_t ldk, std::int64_t count, float scale, float* s,
                    std::int64_t lds) {
  kernels.rows.qk_rows_bf16(q, rows, ldq, d, keys, ldk, count, scale, s, lds);
}
inline void qk_rows(const simd::KernelTable& kernels, const float* q, std::int64_t rows, std::int64_t ldq,
                    std::int64_t d, const std::int8_t* keys, const float* key_scales, std::int64_t ldk,
                    std::int64_t count, float scale, float* s, std::int64_t lds) {
  kernels.rows.qk_rows_int8(q, rows, ldq, d, keys, ldk, key_scales, count, scale, s, lds);
}
inline void pv_rows(const simd::KernelTable& kernels, const float* p, std::int64_t rows, std::int64_t ldp,
                    std::int64_t count, const float* v, std::int64_t ldv, std::int64_t dv, float* o, std::int64_t ldo,
                    const float* row_scale) {
  kernels.rows.pv_rows(p, rows, ldp, count, v, ldv, dv, o, ldo, row_scale);
}
inline void pv_rows(const simd::KernelTable& kernels, const float* p, std::int64_t rows, std::int64_t ldp,
                    std::int64_t count, const bf16* v, std::int64_t ldv, std::int64_t dv, float* o, std::int64_t ldo,
                    const float* row_scale) {
  kernels.rows.pv_rows_bf16(p, rows, ldp, count, v, ldv, dv, o, ldo, row_scale);
}
inline void pv_rows(const simd::KernelTable& kernels, const float* p, std::int64_t rows, std::int64_t ldp,
                    std::int64_t count, const std::int8_t* v, const float* value_scales, std::int64_t ldv,
                    std::int64_t dv, float* o, std::int64_t ldo, const float* row_scale) {
  kernels.rows.pv_rows_int8(p, rows, ldp, count, v, ldv, value_scales, dv, o, ldo, row_scale);
}

}  // namespace longattn::engine
