#include "engine/key_value_packing.hpp"

#include <algorithm>
#include <vector>

#include "engine/input_elements.hpp"

namespace longattn::engine {

template <class T>
void pack_key_panels(const simd::KernelTable& kernels, const HeadsView<const T>& k,
                     std::int64_t b, std::int64_t h, const PackedHeadLayout& layout,
                     std::int64_t first_panel, std::int64_t last_panel, float scale, float* panels,
                     PanelStores stores, const RotaryTable* rope, KeyReads reads) {
  const std::int64_t P = layout.panel_width, D = layout.d;
  const bool streamed = stores == PanelStores::streamed;
  const T* head = k.data + b * k.strides[0] + h * k.strides[1];
  const bool widened = !kReadInPlace<T>;
  const bool staged = reads == KeyReads::staged && rope == nullptr && k.strides[3] == 1;
  // A panel's keys as rows of D floats, rotated (RoPE), widened or staged, before they are
  // transposed.
  std::vector<float> key_rows(rope != nullptr || staged || widened ? static_cast<std::size_t>(P * D) : 0);
  for (std::int64_t p = first_panel; p < last_panel; ++p) {
    float* panel = panels + (p - first_panel) * D * P;
    const std::int64_t j0 = p * P, keys = std::min(P, layout.nk - j0);
    if (widened) {  // bf16: widened row by row, rotated there, then transposed like any key
      for (std::int64_t c = 0; c < keys; ++c) {
        float* row = key_rows.data() + c * D;
        widen_row(kernels, head + (j0 + c) * k.strides[2], k.strides[3], D, row);
        if (rope != nullptr) rope->rotate(row, 1, j0 + c, scale, row);
      }
      kernels.packing.pack_key_panel(key_rows.data(), D, keys, D, rope != nullptr ? 1.0f : scale, panel, streamed);
      continue;
    }
    if constexpr (kReadInPlace<T>) {
      if (rope != nullptr) {  // rotated one panel at a time into rows, then transposed like any key
        for (std::int64_t c = 0; c < keys; ++c) {
          rope->rotate(head + (j0 + c) * k.strides[2], k.strides[3], j0 + c, scale, key_rows.data() + c * D);
        }
        kernels.packing.pack_key_panel(key_rows.data(), D, keys, D, 1.0f, panel, streamed);
        continue;
      }
      if (staged) {
        const float* first = head + j0 * k.strides[2];
        if (k.strides[2] == D) {
          std::copy_n(first, keys * D, key_rows.data());
        } else {
          for (std::int64_t c = 0; c < keys; ++c) std::copy_n(first + c * k.strides[2], D, key_rows.data() + c * D);
        }
        kernels.packing.pack_key_panel(key_rows.data(), D, keys, D, scale, panel, streamed);
        continue;
      }
      if (k.strides[3] == 1) {  // both common layouts: transposed in registers
        kernels.packing.pack_key_panel(head + j0 * k.strides[2], k.strides[2], keys, D, scale, panel, streamed);
        continue;
      }
      for (std::int64_t c = 0; c < keys; ++c) {
        const float* key = head + (j0 + c) * k.strides[2];
        for (std::int64_t d = 0; d < D; ++d) panel[d * P + c] = key[d * k.strides[3]] * scale;
      }
      for (std::int64_t d = 0; d < D; ++d) std::fill(panel + d * P + keys, panel + (d + 1) * P, 0.0f);
    }
  }
}

template <class T>
void pack_projected_key_panels(const simd::KernelTable& kernels, const HeadsView<const T>& k,
                               const TensorView<const float, 2>& wk, std::int64_t b, std::int64_t h,
                               const PackedHeadLayout& layout, std::int64_t first_panel,
                               std::int64_t last_panel, float* panels, PanelStores stores) {
  const std::int64_t P = layout.panel_width, Da = layout.d, D = wk.shape[1];
  const T* head = k.data + b * k.strides[0] + h * k.strides[1];
  std::vector<float> projected(static_cast<std::size_t>(P * Da));
  for (std::int64_t p = first_panel; p < last_panel; ++p) {
    const std::int64_t j0 = p * P, keys = std::min(P, layout.nk - j0);
    for (std::int64_t c = 0; c < keys; ++c) {
      const T* key = head + (j0 + c) * k.strides[2];
      for (std::int64_t a = 0; a < Da; ++a) {
        const float* row = wk.data + a * wk.strides[0];
        float sum = 0;
        for (std::int64_t d = 0; d < D; ++d) sum += row[d * wk.strides[1]] * to_float(key[d * k.strides[3]]);
        projected[c * Da + a] = sum;
      }
    }
    kernels.packing.pack_key_panel(projected.data(), Da, keys, Da, 1.0f, panels + (p - first_panel) * Da * P,
                           stores == PanelStores::streamed);
  }
}

template <class T>
void pack_value_rows(const simd::KernelTable& kernels, const HeadsView<const T>& v, std::int64_t b,
                     std::int64_t h, const PackedHeadLayout& layout, std::int64_t first_panel,
                     std::int64_t last_panel, float* rows) {
  const std::int64_t P = layout.panel_width, W = layout.dv_padded;
  const T* head = v.data + b * v.strides[0] + h * v.strides[1];
  if (v.strides[3] == 1 && v.strides[2] == W && layout.dv == W) {
    const std::int64_t j0 = first_panel * P, j1 = std::min(last_panel * P, layout.nk);
    widen(kernels, head + j0 * W, (j1 - j0) * W, rows);
    std::fill(rows + (j1 - j0) * W, rows + (last_panel * P - j0) * W, 0.0f);
    return;
  }
  for (std::int64_t j = first_panel * P; j < last_panel * P; ++j) {
    float* row = rows + (j - first_panel * P) * W;
    std::int64_t c = 0;
    if (j < layout.nk) {
      widen_row(kernels, head + j * v.strides[2], v.strides[3], layout.dv, row);
      c = layout.dv;
    }
    std::fill(row + c, row + W, 0.0f);
  }
}

void pack_key_pair_panels(const simd::Bf16DotKernels& kernels, const HeadsView<const bf16>& k, std::int64_t b,
                          std::int64_t h, const PackedHeadLayout& layout, std::int64_t first_panel,
                          std::int64_t last_panel, bf16* panels, PanelStores stores, const RotaryTable* rope) {
  const std::int64_t P = layout.panel_width, pairs = layout.d, D = k.shape[3];
  const bf16* head = k.data + b * k.strides[0] + h * k.strides[1];
  // Rows the kernel can read as pairs where they lie: contiguous, an even D, an even stride.
  const bool in_place = rope == nullptr && k.strides[3] == 1 && D % 2 == 0 && k.strides[2] % 2 == 0;
  std::vector<bf16> staged(in_place ? 0 : static_cast<std::size_t>(P * 2 * pairs));
  std::vector<float> rotated(rope != nullptr ? static_cast<std::size_t>(D) : 0);
  for (std::int64_t p = first_panel; p < last_panel; ++p) {
    bf16* panel = panels + (p - first_panel) * 2 * pairs * P;
    const std::int64_t j0 = p * P, keys = std::min(P, layout.nk - j0);
    if (in_place) {
      kernels.pack_key_panel(head + j0 * k.strides[2], k.strides[2], keys, pairs, panel,
                             stores == PanelStores::streamed);
      continue;
    }
    for (std::int64_t c = 0; c < keys; ++c) {  // into rows of 2·pairs, an odd D's last pair completed by a zero
      const bf16* key = head + (j0 + c) * k.strides[2];
      bf16* row = staged.data() + c * 2 * pairs;
      if (rope != nullptr) {
        for (std::int64_t d = 0; d < D; ++d) rotated[d] = static_cast<float>(key[d * k.strides[3]]);
        rope->rotate(rotated.data(), 1, j0 + c, 1.0f, rotated.data());
        for (std::int64_t d = 0; d < D; ++d) row[d] = bf16(rotated[d]);
      } else {
        for (std::int64_t d = 0; d < D; ++d) row[d] = key[d * k.strides[3]];
      }
      std::fill(row + D, row + 2 * pairs, bf16());
    }
    kernels.pack_key_panel(staged.data(), 2 * pairs, keys, pairs, panel, stores == PanelStores::streamed);
  }
}

template <class T>
void pack_value_pair_rows(PairRowPacker<T> pack, const HeadsView<const T>& v, std::int64_t b, std::int64_t h,
                          const PackedHeadLayout& layout, std::int64_t first_panel, std::int64_t last_panel,
                          bf16* rows) {
  const std::int64_t P = layout.panel_width, W = layout.dv_padded, dv = layout.dv;
  const T* head = v.data + b * v.strides[0] + h * v.strides[1];
  const std::int64_t j0 = first_panel * P, j1 = std::min(last_panel * P, layout.nk);
  std::int64_t packed = 0;  // pair rows written
  if (j1 > j0) {
    if (v.strides[3] == 1) {
      pack(head + j0 * v.strides[2], v.strides[2], j1 - j0, dv, W, rows);
    } else {  // a few keys at a time into contiguous rows, then paired
      constexpr std::int64_t kStagedKeys = 64;
      std::vector<T> staged(static_cast<std::size_t>(kStagedKeys * dv));
      for (std::int64_t j = j0; j < j1; j += kStagedKeys) {
        const std::int64_t count = std::min(kStagedKeys, j1 - j);
        for (std::int64_t c = 0; c < count; ++c) {
          const T* row = head + (j + c) * v.strides[2];
          for (std::int64_t x = 0; x < dv; ++x) staged[c * dv + x] = row[x * v.strides[3]];
        }
        pack(staged.data(), dv, count, dv, W, rows + (j - j0) * W);
      }
    }
    packed = (j1 - j0 + 1) / 2;
  }
  std::fill(rows + packed * 2 * W, rows + (last_panel - first_panel) * P * W, bf16());
}

#define LONGATTN_PACKING_FOR(T)                                                                                    \
  template void pack_key_panels(const simd::KernelTable&, const HeadsView<const T>&, std::int64_t, std::int64_t, \
                                const PackedHeadLayout&, std::int64_t, std::int64_t, float, float*, PanelStores, \
                                const RotaryTable*, KeyReads);                                                   \
  template void pack_projected_key_panels(const simd::KernelTable&, const HeadsView<const T>&,                   \
                                          const TensorView<const float, 2>&, std::int64_t, std::int64_t,         \
                                          const PackedHeadLayout&, std::int64_t, std::int64_t, float*,           \
                                          PanelStores);                                                          \
  template void pack_value_rows(const simd::KernelTable&, const HeadsView<const T>&, std::int64_t, std::int64_t, \
                                const PackedHeadLayout&, std::int64_t, std::int64_t, float*);                   \
  template void pack_value_pair_rows(PairRowPacker<T>, const HeadsView<const T>&, std::int64_t, std::int64_t,    \
                                     const PackedHeadLayout&, std::int64_t, std::int64_t, bf16*);
LONGATTN_PACKING_FOR(float)
LONGATTN_PACKING_FOR(bf16)
#undef LONGATTN_PACKING_FOR

}  // namespace longattn::engine
