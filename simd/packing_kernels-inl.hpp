// Packing kernels: keys laid out as panels [depth][panel_width] for the tile kernels (fp32
// features or bf16 pairs), value rows in bf16 pairs (from bf16, or fp32 rounded).
// Part of the kernels one target compiles (simd/kernel_table-inl.hpp): included once per
// target translation unit, inside that target's namespace.
#pragma once

#include <cstdint>

#include "simd/kernel_table.hpp"
#include "simd/vec_f32.hpp"

namespace longattn::simd::LONGATTN_SIMD_TARGET {

// Lays `count` <= NV·lanes keys (rows of d contiguous features, `stride` floats apart) out,
// times `scale`, as one panel [d][NV·lanes], zero past count: lanes × lanes blocks
// transposed in registers.
// With `streamed`, the panel (vector-aligned) is written past the caches, for packed keys
// that outgrow L2 before they are read (bench/TUNING.md "Streaming stores").
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

#if defined(__AVX512BF16__)
// One key panel of bf16 pairs from `count` <= NV·lanes keys of 2·pairs contiguous bf16 (rows
// `stride` bf16 apart, stride even): 4-byte lanes transposed like fp32 features.
template <class V, int NV>
void pack_key_pair_panel(const bf16* keys, std::int64_t stride, std::int64_t count, std::int64_t pairs, bf16* panel,
                         bool streamed) {
  pack_key_panel<V, NV, false>(reinterpret_cast<const float*>(keys), stride / 2, count, pairs, 1.0f,
                               reinterpret_cast<float*>(panel), streamed);
}

// A row's `lanes` values from p as pair halves (bf16 as they are, fp32 rounded to bf16), and
// one value's bf16 bits.
template <class V>
V pair_of(const bf16* even, const bf16* odd) {
  return V::pair_bf16(even, odd);
}
template <class V>
V pair_of(const float* even, const float* odd) {
  return V::pair_rounded(even, odd);
}
inline std::uint32_t bf16_bits(bf16 x) { return x.bits; }
inline std::uint32_t bf16_bits(float x) { return bf16(x).bits; }

// Value rows in pairs: out[t][c] = (v[2t][c], v[2t + 1][c]) for 2t < count (rows of dv
// contiguous E, bf16 or fp32 rounded to bf16, `stride` apart), pair rows of dv_padded pairs;
// columns past dv and a missing second row are zeros. out holds (count + 1) / 2 pair rows.
template <class V, class E>
void pack_value_pairs(const E* v, std::int64_t stride, std::int64_t count, std::int64_t dv, std::int64_t dv_padded,
                      bf16* out) {
  constexpr int L = V::lanes;
  for (std::int64_t t = 0; 2 * t < count; ++t) {
    const E* even = v + 2 * t * stride;
    const E* odd = 2 * t + 1 < count ? even + stride : nullptr;
    std::uint32_t* row = reinterpret_cast<std::uint32_t*>(out) + t * dv_padded;
    std::int64_t c = 0;
    for (; c + L <= dv; c += L) {
      pair_of<V>(even + c, odd == nullptr ? nullptr : odd + c).store(reinterpret_cast<float*>(row + c));
    }
    for (; c < dv_padded; ++c) {
      const std::uint32_t low = c < dv ? bf16_bits(even[c]) : 0, high = c < dv && odd != nullptr ? bf16_bits(odd[c]) : 0;
      row[c] = low | high << 16;
    }
  }
}
#endif

}  // namespace longattn::simd::LONGATTN_SIMD_TARGET
