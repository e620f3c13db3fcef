#include "engine/key_value_packing.hpp"

#include <algorithm>
#include <vector>

namespace longattn::engine {

void pack_key_panels(const simd::KernelTable& kernels, const HeadsView<const float>& k,
                     std::int64_t b, std::int64_t h, const PackedHeadLayout& layout,
                     std::int64_t first_panel, std::int64_t last_panel, float scale, float* panels,
                     PanelStores stores, const RotaryTable* rope, KeyReads reads) {
  const std::int64_t P = layout.panel_width, D = layout.d;
  const bool streamed = stores == PanelStores::streamed;
  const float* head = k.data + b * k.strides[0] + h * k.strides[1];
  const bool staged = reads == KeyReads::staged && rope == nullptr && k.strides[3] == 1;
  // A panel's keys as rows of D floats, rotated (RoPE) or staged, before they are transposed.
  std::vector<float> key_rows(rope != nullptr || staged ? static_cast<std::size_t>(P * D) : 0);
  for (std::int64_t p = first_panel; p < last_panel; ++p) {
    float* panel = panels + (p - first_panel) * D * P;
    const std::int64_t j0 = p * P, keys = std::min(P, layout.nk - j0);
    if (rope != nullptr) {  // rotated one panel at a time into rows, then transposed like any key
      for (std::int64_t c = 0; c < keys; ++c) {
        rope->rotate(head + (j0 + c) * k.strides[2], k.strides[3], j0 + c, scale, key_rows.data() + c * D);
      }
      kernels.pack_key_panel(key_rows.data(), D, keys, D, 1.0f, panel, streamed);
      continue;
    }
    if (staged) {
      const float* first = head + j0 * k.strides[2];
      if (k.strides[2] == D) {
        std::copy_n(first, keys * D, key_rows.data());
      } else {
        for (std::int64_t c = 0; c < keys; ++c) std::copy_n(first + c * k.strides[2], D, key_rows.data() + c * D);
      }
      kernels.pack_key_panel(key_rows.data(), D, keys, D, scale, panel, streamed);
      continue;
    }
    if (k.strides[3] == 1) {  // both common layouts: transposed in registers
      kernels.pack_key_panel(head + j0 * k.strides[2], k.strides[2], keys, D, scale, panel, streamed);
      continue;
    }
    for (std::int64_t c = 0; c < keys; ++c) {
      const float* key = head + (j0 + c) * k.strides[2];
      for (std::int64_t d = 0; d < D; ++d) panel[d * P + c] = key[d * k.strides[3]] * scale;
    }
    for (std::int64_t d = 0; d < D; ++d) std::fill(panel + d * P + keys, panel + (d + 1) * P, 0.0f);
  }
}

void pack_projected_key_panels(const simd::KernelTable& kernels, const HeadsView<const float>& k,
                               const TensorView<const float, 2>& wk, std::int64_t b, std::int64_t h,
                               const PackedHeadLayout& layout, std::int64_t first_panel,
                               std::int64_t last_panel, float* panels, PanelStores stores) {
  const std::int64_t P = layout.panel_width, Da = layout.d, D = wk.shape[1];
  const float* head = k.data + b * k.strides[0] + h * k.strides[1];
  std::vector<float> projected(static_cast<std::size_t>(P * Da));
  for (std::int64_t p = first_panel; p < last_panel; ++p) {
    const std::int64_t j0 = p * P, keys = std::min(P, layout.nk - j0);
    for (std::int64_t c = 0; c < keys; ++c) {
      const float* key = head + (j0 + c) * k.strides[2];
      for (std::int64_t a = 0; a < Da; ++a) {
        const float* row = wk.data + a * wk.strides[0];
        float sum = 0;
        for (std::int64_t d = 0; d < D; ++d) sum += row[d * wk.strides[1]] * key[d * k.strides[3]];
        projected[c * Da + a] = sum;
      }
    }
    kernels.pack_key_panel(projected.data(), Da, keys, Da, 1.0f, panels + (p - first_panel) * Da * P,
                           stores == PanelStores::streamed);
  }
}

void pack_value_rows(const HeadsView<const float>& v, std::int64_t b, std::int64_t h,
                     const PackedHeadLayout& layout, std::int64_t first_panel,
                     std::int64_t last_panel, float* rows) {
  const std::int64_t P = layout.panel_width, W = layout.dv_padded;
  const float* head = v.data + b * v.strides[0] + h * v.strides[1];
  if (v.strides[3] == 1 && v.strides[2] == W && layout.dv == W) {
    const std::int64_t j0 = first_panel * P, j1 = std::min(last_panel * P, layout.nk);
    std::copy_n(head + j0 * W, (j1 - j0) * W, rows);
    std::fill(rows + (j1 - j0) * W, rows + (last_panel * P - j0) * W, 0.0f);
    return;
  }
  for (std::int64_t j = first_panel * P; j < last_panel * P; ++j) {
    float* row = rows + (j - first_panel * P) * W;
    std::int64_t c = 0;
    if (j < layout.nk) {
      const float* value = head + j * v.strides[2];
      if (v.strides[3] == 1) {
        std::copy_n(value, layout.dv, row);
        c = layout.dv;
      }
      for (; c < layout.dv; ++c) row[c] = value[c * v.strides[3]];
    }
    std::fill(row + c, row + W, 0.0f);
  }
}

}  // namespace longattn::engine
