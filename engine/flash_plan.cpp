#include "engine/flash_plan.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <span>
#include <utility>

#include "engine/schedule.hpp"
#include "longattn/error.hpp"

namespace longattn::engine {
namespace {

// Br × Bc = 96 × 256 for every D, from a sweep of both (bench/TUNING.md "Query block and key
// tile"). Br is a multiple of every target's row group (6 and 4); Bc of every panel width.
constexpr std::int64_t kBlockRows = kQueryBlockRows;
constexpr std::int64_t kBlockKeys = 256;

// Packed keys and values held at once: several kv heads when they fit, so small heads still
// give every thread work; a chunk of one head's keys when a whole head does not. 32 MiB keeps
// n = 65536, D = 64 in one chunk and the engine's memory within the caller's tensors + 64 MiB.
constexpr std::int64_t kPackedBudgetBytes = 32 << 20;

// One head's chunk of packed keys and values stays in L2 beside the query block's tiles while
// every query block of the head passes over it (bench/TUNING.md "Key chunk").
constexpr std::int64_t kChunkBytes = 1 << 20;

// The most keys one query block of `block_rows` rows sees, over every block (and batch, where
// key lengths differ): its window's, and the sink keys apart from them.
std::int64_t widest_keys(const VisibilityPlan& visibility, const AttentionShape& shape, std::int64_t block_rows) {
  std::int64_t widest = 0;
  for (std::int64_t b = 0; b < (visibility.depends_on_batch() ? shape.batch : 1); ++b) {
    for (std::int64_t i0 = 0; i0 < shape.nq; i0 += block_rows) {
      const std::int64_t i1 = std::min(shape.nq, i0 + block_rows);
      widest = std::max(widest, visibility.window_hull(b, i0, i1).size() + visibility.sinks_end(b, i1 - 1));
    }
  }
  return widest;
}

std::vector<float> sinks_in(std::span<const float> sinks, float unit) {
  std::vector<float> scaled(sinks.begin(), sinks.end());
  for (float& x : scaled) x *= unit;
  return scaled;
}

// The int8 scores options ask for, or null; an Error where the kernels have none.
const simd::Int8DotKernels* int8_kernels(const simd::KernelTable& kernels, const AttentionOptions& options) {
  if (options.qk_precision != QkPrecision::int8) return nullptr;
  if (kernels.int8_dot == nullptr) {
    throw Error(std::string("qk_precision: int8 scores need AVX512-VNNI (vpdpbusd), ") +
                (kernels.isa == Isa::avx512 ? "which this CPU does not have"
                                            : "which the " + std::string(kernels.name) + " path does not use"));
  }
  const bool bf16_pv = options.bf16_products == Bf16Products::native && kernels.int8_dot_bf16 != nullptr;
  return bf16_pv ? kernels.int8_dot_bf16 : kernels.int8_dot;
}

}  // namespace

FlashPlan make_flash_plan(const AttentionShape& shape, const AttentionOptions& options) {
  const simd::KernelTable& kernels = simd::kernels_for(options.isa);
  const float scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(shape.d)));
  const bool softmax = options.normalizer == Normalizer::softmax;
  const float log2e = std::numbers::log2e_v<float>;
  const float score_unit = softmax ? log2e : 1.0f;  // softmax runs on exp2
  const bool decoding = queries_fit_one_block(shape, kBlockRows);
  const bool bf16_dot = options.bf16_products == Bf16Products::native && kernels.bf16_dot != nullptr &&
                        !options.additive.enabled() && !decoding;
  const simd::Int8DotKernels* int8 = int8_kernels(kernels, options);
  VisibilityPlan visibility(shape, options, kBlockRows, kernels.panel_width);
  const std::int64_t query_offset = options.positions.query_offset(shape.nq, shape.nk);
  const std::int64_t widest = widest_keys(visibility, shape, kBlockRows);
  const float key_scale = softmax ? scale * log2e : scale;
  const float softcap = options.softcap.value_or(0.0f) * score_unit;
  return FlashPlan{
      .shape = shape,
      .visibility = std::move(visibility),
      .normalizer = options.normalizer,
      .key_scale = key_scale,
      .packed_key_scale = softcap > 0 ? key_scale * simd::kSoftcapExponent / softcap : key_scale,
      .sigmoid_bias =
          options.sigmoid_bias.value_or(-std::log(static_cast<float>(std::max<std::int64_t>(1, shape.nk)))),
      .additive = options.additive,
      .score_depth = options.additive.enabled() ? static_cast<std::int64_t>(options.additive.w.size()) : shape.d,
      .score_scale = score_unit,
      .query_offset = query_offset,
      .rope = RotaryTable(options.rope, shape.d,
                          std::max({shape.nk, std::abs(query_offset), std::abs(query_offset + shape.nq)})),
      .bias = PositionBias(shape, options, score_unit),
      .score_bias = options.score_bias,
      .softcap = softcap,
      .sinks = sinks_in(options.sinks, score_unit),
      .kernels = &kernels,
      .bf16_dot = bf16_dot ? kernels.bf16_dot : nullptr,
      .int8_dot = decoding ? nullptr : int8,
      .int8_rows = decoding ? int8 : nullptr,
      .block_rows = kBlockRows,
      .block_keys = kBlockKeys,
      .widest_keys = widest,
      .dv_padded = (shape.dv + kernels.lanes - 1) / kernels.lanes * kernels.lanes,
      .packed_budget_bytes = kPackedBudgetBytes,
      .chunk_bytes = kChunkBytes,
      .threads = options.threads,
  };
}

}  // namespace longattn::engine
