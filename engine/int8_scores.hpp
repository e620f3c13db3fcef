// The inputs of the int8 scores (QkPrecision::int8, after SageAttention) as their kernels read
// them (simd::Int8DotKernels): the mean key each kv head is smoothed by, key panels and query
// rows quantized.
//
// Why smoothing is exact: a query's scores against k_j - μ differ from those against k_j by
// q·μ, the same for every key of the row, which softmax ignores; the row's lse and sink take
// it back (int8_score_offset). Keys with a large shared component (outlier channels) keep
// their int8 steps for what tells them apart.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/flash_plan.hpp"
#include "engine/key_value_packing.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn::engine {

// The mean key of every head b · kv_heads + h, [B · Hkv][D]: over the keys some query may see
// (j < key_lengths[b]) whose features are all finite, each rotated to its position with RoPE.
// A non-finite key stays out of it: its own scores stay non-finite, the others' untouched.
template <class KV>
std::vector<float> smoothing_means(const FlashPlan& plan, const HeadsView<const KV>& k);

// Key panels [first_panel, last_panel) of head (b, h) of k, less `mean` and quantized, into
// `panels` (layout.d = quads + kInt8PanelTail units per key).
template <class KV>
void pack_int8_key_panels(const FlashPlan& plan, const HeadsView<const KV>& k, std::int64_t b, std::int64_t h,
                          const PackedHeadLayout& layout, std::int64_t first_panel, std::int64_t last_panel,
                          const float* mean, float* panels, PanelStores stores);

// Quantizes `rows` fp32 query rows (D floats apart, the positions and rotation already
// applied) by `kernels` into rows of simd::int8_query_units(D) units at `out`, with each row's
// score offset: plan.key_scale · q · mean in the kernel's score units (0 without a mean).
void quantize_query_rows(const simd::Int8DotKernels& kernels, const FlashPlan& plan, const float* q,
                         std::int64_t rows, const float* mean, float* out);

// What a quantized query row's scores lost to smoothing: add it to the row's max.
inline float int8_score_offset(const float* row, std::int64_t d) { return row[simd::int8_quads(d) + 2]; }

}  // namespace longattn::engine
