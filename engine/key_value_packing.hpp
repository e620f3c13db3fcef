// Lays out one kv head's keys and values the way the micro-kernels read them.
//
// Keys: panels of `panel_width` keys, each [D][panel_width], so the QKᵀ kernel loads whole
// vectors of keys per feature. Packed once per head (or key chunk) and reused by every
// query block, or, for narrow windows, packed block by block as a band of blocks needs them.
// Values: rows of dv_padded floats. Both zero-padded to a whole number of panels, so padded
// keys contribute exact zeros (their scores are masked to -inf, their values are 0).
#pragma once

#include <cstdint>

#include "engine/positional_encoding.hpp"
#include "longattn/tensor_view.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::engine {

struct PackedHeadLayout {
  std::int64_t nk, d, dv, panel_width, dv_padded;
  std::int64_t panels() const { return (nk + panel_width - 1) / panel_width; }
  std::int64_t nk_padded() const { return panels() * panel_width; }
  std::int64_t key_floats() const { return nk_padded() * d; }
  std::int64_t value_floats() const { return nk_padded() * dv_padded; }
};

// Where packed panels go: past the caches when they outgrow L2 before they are read (a
// head's keys packed once for all its query blocks), into them when read right away.
enum class PanelStores { cached, streamed };

// How packing reads a key's features where they lie (D contiguous floats): in place, or
// staged, a panel's rows first copied in one sequential run into a buffer, then transposed
// there. Rows read once from memory by few queries (split keys) are staged: transposed in
// place, 8 rows a vector at a time, they come from memory at half the rate of a copy
// (bench/TUNING.md "Packing").
enum class KeyReads { in_place, staged };

// The functions below read k and v of element type T (float or bf16) and pack fp32.

// Packs key panels [first_panel, last_panel) of head (b, h) of k, times `scale`, into
// `panels`, which receives panel first_panel at its start; with `rope`, key j rotated to
// position j. bf16 keys are widened into rows first, as staged ones are copied.
template <class T>
void pack_key_panels(const simd::KernelTable& kernels, const HeadsView<const T>& k,
                     std::int64_t b, std::int64_t h, const PackedHeadLayout& layout,
                     std::int64_t first_panel, std::int64_t last_panel, float scale, float* panels,
                     PanelStores stores, const RotaryTable* rope = nullptr, KeyReads reads = KeyReads::in_place);

// Additive scoring: packs Wk k_j (Da features per key, Wk [Da, D]) like key panels, with
// layout.d = Da.
template <class T>
void pack_projected_key_panels(const simd::KernelTable& kernels, const HeadsView<const T>& k,
                               const TensorView<const float, 2>& wk, std::int64_t b, std::int64_t h,
                               const PackedHeadLayout& layout, std::int64_t first_panel,
                               std::int64_t last_panel, float* panels, PanelStores stores);

// Packs the value rows of the same key panels of head (b, h) of v into `rows`, which
// receives the first row of panel first_panel at its start: one copy where the rows lie
// back to back as packed rows do, at twice the rate of a copy per row (bench/TUNING.md
// "Packing").
template <class T>
void pack_value_rows(const simd::KernelTable& kernels, const HeadsView<const T>& v, std::int64_t b,
                     std::int64_t h, const PackedHeadLayout& layout, std::int64_t first_panel,
                     std::int64_t last_panel, float* rows);

// For the bf16 products (simd::Bf16DotKernels), bf16 k and v packed as they are, no scale:
// key panels [pairs][panel_width] of feature pairs (layout.d = pairs, ⌈D / 2⌉) and value pair
// rows of dv_padded pairs (two keys each), panel first_panel's at the start of `panels` /
// `rows`; zero past Nk, an odd D's last feature paired with a zero. With `rope`, key j is
// widened, rotated to position j and rounded back to bf16.
void pack_key_pair_panels(const simd::Bf16DotKernels& kernels, const HeadsView<const bf16>& k, std::int64_t b,
                          std::int64_t h, const PackedHeadLayout& layout, std::int64_t first_panel,
                          std::int64_t last_panel, bf16* panels, PanelStores stores,
                          const RotaryTable* rope = nullptr);
// The pair rows of the same key panels from v: bf16 values as they are, or (for the int8
// scores' P·V in bf16) fp32 values rounded, by `pack` (Bf16DotKernels::pack_value_pairs or
// Int8DotKernels::pack_value_pairs).
template <class T>
using PairRowPacker = void (*)(const T* v, std::int64_t stride, std::int64_t count, std::int64_t dv,
                               std::int64_t dv_padded, bf16* out);
template <class T>
void pack_value_pair_rows(PairRowPacker<T> pack, const HeadsView<const T>& v, std::int64_t b, std::int64_t h,
                          const PackedHeadLayout& layout, std::int64_t first_panel, std::int64_t last_panel,
                          bf16* rows);

}  // namespace longattn::engine
