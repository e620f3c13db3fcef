#include "engine/int8_scores.hpp"

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include "engine/input_elements.hpp"

namespace longattn::engine {
namespace {

// Keys summed in fp32 this many at a time, then into the fp64 total: a long sequence's mean
// keeps fp32's precision without a double add per feature.
constexpr std::int64_t kKeysPerPartialSum = 64;

// Key j of head (b, h) as fp32 at `row` (widened, rotated to position j); `row` itself, or
// the caller's row where it lies as such.
template <class KV>
const float* key_row(const FlashPlan& plan, const HeadsView<const KV>& k, std::int64_t b, std::int64_t h,
                     std::int64_t j, float* row) {
  const KV* key = k.data + b * k.strides[0] + h * k.strides[1] + j * k.strides[2];
  if constexpr (kReadInPlace<KV>) {
    if (plan.rope.enabled()) {
      plan.rope.rotate(key, k.strides[3], j, 1.0f, row);
      return row;
    }
    if (k.strides[3] == 1) return key;
  }
  widen_row(*plan.kernels, key, k.strides[3], plan.shape.d, row);
  if (plan.rope.enabled()) plan.rope.rotate(row, 1, j, 1.0f, row);
  return row;
}

template <class KV>
void mean_of_head(const FlashPlan& plan, const HeadsView<const KV>& k, std::int64_t b, std::int64_t h, float* mean) {
  const std::int64_t D = plan.shape.d, n = plan.visibility.key_length(b);
  std::vector<double> total(static_cast<std::size_t>(D), 0.0);
  std::vector<float> partial(static_cast<std::size_t>(D)), row(static_cast<std::size_t>(D));
  std::int64_t counted = 0;
  for (std::int64_t j0 = 0; j0 < n; j0 += kKeysPerPartialSum) {
    std::fill(partial.begin(), partial.end(), 0.0f);
    for (std::int64_t j = j0; j < std::min(n, j0 + kKeysPerPartialSum); ++j) {
      const float* key = key_row(plan, k, b, h, j, row.data());
      if (!plan.kernels->elementwise.all_finite(key, 1, D, D)) continue;
      for (std::int64_t d = 0; d < D; ++d) partial[d] += key[d];
      ++counted;
    }
    for (std::int64_t d = 0; d < D; ++d) total[d] += partial[d];
  }
  for (std::int64_t d = 0; d < D; ++d) mean[d] = counted == 0 ? 0.0f : static_cast<float>(total[d] / counted);
}

}  // namespace

template <class KV>
std::vector<float> smoothing_means(const FlashPlan& plan, const HeadsView<const KV>& k) {
  const AttentionShape& s = plan.shape;
  std::vector<float> means(static_cast<std::size_t>(s.batch * s.kv_heads * s.d));
  tbb::parallel_for(std::int64_t{0}, s.batch * s.kv_heads, [&](std::int64_t head) {
    mean_of_head(plan, k, head / s.kv_heads, head % s.kv_heads, means.data() + head * s.d);
  });
  return means;
}

template <class KV>
void pack_int8_key_panels(const FlashPlan& plan, const HeadsView<const KV>& k, std::int64_t b, std::int64_t h,
                          const PackedHeadLayout& layout, std::int64_t first_panel, std::int64_t last_panel,
                          const float* mean, float* panels, PanelStores stores) {
  const std::int64_t P = layout.panel_width, D = plan.shape.d;
  const bool in_place = kReadInPlace<KV> && !plan.rope.enabled() && k.strides[3] == 1;
  std::vector<float> rows(in_place ? 0 : static_cast<std::size_t>(P * D));
  for (std::int64_t p = first_panel; p < last_panel; ++p) {
    const std::int64_t j0 = p * P, keys = std::min(P, layout.nk - j0);
    auto* panel = reinterpret_cast<std::uint8_t*>(panels + (p - first_panel) * layout.d * P);
    const bool streamed = stores == PanelStores::streamed;
    if (in_place) {
      const auto* first = reinterpret_cast<const float*>(k.data + b * k.strides[0] + h * k.strides[1] + j0 * k.strides[2]);
      plan.int8_dot->pack_key_panel(first, k.strides[2], keys, D, mean, panel, streamed);
      continue;
    }
    for (std::int64_t c = 0; c < keys; ++c) {
      float* row = rows.data() + c * D;
      const float* key = key_row(plan, k, b, h, j0 + c, row);
      if (key != row) std::copy_n(key, D, row);
    }
    plan.int8_dot->pack_key_panel(rows.data(), D, keys, D, mean, panel, streamed);
  }
}

void quantize_query_rows(const simd::Int8DotKernels& kernels, const FlashPlan& plan, const float* q,
                         std::int64_t rows, const float* mean, float* out) {
  const std::int64_t D = plan.shape.d, quads = simd::int8_quads(D), units = simd::int8_query_units(D);
  auto* bytes = reinterpret_cast<std::int8_t*>(out);
  // A block's rows at most: on the stack, as decoding quantizes its queries once a tile.
  std::array<float, kQueryBlockRows> scales, offsets{};
  if (rows > kQueryBlockRows) throw std::logic_error("quantize_query_rows: more rows than a query block");
  kernels.quantize_rows(q, D, rows, D, nullptr, 0, bytes, units * 4, scales.data());
  if (mean != nullptr) plan.kernels->rows.qk_rows(q, rows, D, D, mean, D, 1, plan.key_scale, offsets.data(), 1);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int8_t* values = bytes + r * units * 4;
    std::int32_t sum = 0;
    for (std::int64_t d = 0; d < D; ++d) sum += values[d];
    const std::int32_t start = -128 * sum;
    float* tail = out + r * units + quads;
    std::memcpy(tail, &start, sizeof(start));
    tail[1] = plan.key_scale * scales[r];
    tail[2] = offsets[r];
  }
}

#define LONGATTN_INT8_INPUTS_FOR(KV)                                                                                \
  template std::vector<float> smoothing_means(const FlashPlan&, const HeadsView<const KV>&);                    \
  template void pack_int8_key_panels(const FlashPlan&, const HeadsView<const KV>&, std::int64_t, std::int64_t, \
                                     const PackedHeadLayout&, std::int64_t, std::int64_t, const float*, float*, \
                                     PanelStores);
LONGATTN_INT8_INPUTS_FOR(float)
LONGATTN_INT8_INPUTS_FOR(bf16)
#undef LONGATTN_INT8_INPUTS_FOR

}  // namespace longattn::engine
