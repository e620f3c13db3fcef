// The inputs of one run of a plan as the driver reads them: q, k, v, out and lse with what
// follows from how they lie (rows read in place or copied, keys packed as fp32, bf16 pairs or
// int8 quads), and the packing and prefetching of their rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "engine/flash_plan.hpp"
#include "engine/input_elements.hpp"
#include "engine/int8_scores.hpp"
#include "engine/key_value_packing.hpp"
#include "engine/schedule.hpp"
#include "longattn/tensor_view.hpp"
#include "simd/prefetch.hpp"

namespace longattn::engine {

struct KeyPages;

// Whether the rows of a [B, H, N, width] view lie back to back as whole, cache-line aligned
// rows of `padded` floats (BHND, width a whole number of vectors): the micro-kernels can then
// read or write them where they are, as their own packed rows.
template <class T>
bool rows_lie_packed(const HeadsView<T>& view, std::int64_t width, std::int64_t padded) {
  return width == padded && view.strides[3] == 1 && view.strides[2] == padded &&
         reinterpret_cast<std::uintptr_t>(view.data) % 64 == 0 && view.strides[1] % 16 == 0 &&
         view.strides[0] % 16 == 0;
}

// Q, KV: float and float, bf16 and bf16, or float and bf16. bf16 inputs are widened to fp32
// wherever rows are copied or packed, unless the bf16 products run (pairs) or the int8 scores
// (quads), which quantize the widened rows.
template <class Q, class KV>
struct FlashInputs {
  static constexpr bool kBf16Inputs = std::is_same_v<Q, bf16> && std::is_same_v<KV, bf16>;

  FlashInputs(const FlashPlan& plan, const HeadsView<const Q>& q, const HeadsView<const KV>& k,
              const HeadsView<const KV>& v, const HeadsView<float>& out, const TensorView<float, 3>& lse,
              const KeyPages* pages = nullptr, std::span<const float> key_means = {})
      : plan(plan), q(q), k(k), v(v), out(out), lse(lse), pages(pages), key_means(key_means),
        quads(plan.int8_dot),
        pairs(kBf16Inputs && quads == nullptr ? plan.bf16_dot : nullptr),
        value_pairs(pairs != nullptr                                     ? pairs
                    : quads != nullptr && quads->probabilities_in_bf16 ? plan.kernels->bf16_dot
                                                                        : nullptr),
        layout{plan.shape.nk, packed_key_units(), plan.shape.dv, plan.kernels->panel_width, plan.dv_padded},
        value_width(value_pairs != nullptr ? plan.dv_padded / 2 : plan.dv_padded),
        query_units(quads != nullptr ? simd::int8_query_units(plan.shape.d) : layout.d),
        q_rows_back_to_back(q.strides[3] == 1 && q.strides[2] == plan.shape.d),
        out_rows_like_acc(rows_lie_packed(out, plan.shape.dv, plan.dv_padded)),
        values_in_place(kReadInPlace<KV> && value_pairs == nullptr && rows_lie_packed(v, plan.shape.dv, value_width)) {}

  const FlashPlan& plan;
  const HeadsView<const Q>& q;
  const HeadsView<const KV>& k;
  const HeadsView<const KV>& v;
  const HeadsView<float>& out;
  const TensorView<float, 3>& lse;
  // Where a KvCache keeps k and v (k and v then only give their shape and strides): read by
  // the split-key driver, tile by tile, in place.
  const KeyPages* pages;
  // With the int8 scores: the mean key of each kv head (smoothing_means), [B · Hkv][D].
  std::span<const float> key_means;
  // The int8 scores, when they run: queries and key panels then hold int8 quads
  // (simd::Int8DotKernels), their sizes counted in 4-byte units like fp32 ones.
  const simd::Int8DotKernels* quads;
  // The bf16 products, when they run: queries, key panels and value rows then hold bf16 pairs
  // (simd::Bf16DotKernels).
  const simd::Bf16DotKernels* pairs;
  // The P·V of bf16 pairs, when it runs (bf16 products, or int8 scores with bf16
  // probabilities): value rows in pairs, read by its pv_tile.
  const simd::Bf16DotKernels* value_pairs;
  PackedHeadLayout layout;    // layout.d: 4-byte units per packed key (features, pairs or quads)
  std::int64_t value_width;   // 4-byte units per key of packed values: dv_padded, or half in pairs
  std::int64_t query_units;   // 4-byte units from one query row of a block to the next
  bool q_rows_back_to_back;   // q's rows of a head lie D floats apart: read in place, fetched ahead
  // out's rows lie as the accumulator's do (dv_padded floats apart, cache-line aligned): a
  // block's output can accumulate there between key chunks.
  bool out_rows_like_acc;
  // A head's value rows lie back to back as whole, cache-line aligned vectors (BHND, Dv a
  // multiple of the vector): read where they are, not packed beside the keys. A vector load
  // split across two lines costs two, and rows far apart leave lines and pages half used.
  bool values_in_place;

  // What the schedule depends on: the plan, and how these views lie.
  ScheduleFacts schedule_facts(int threads) const {
    return ScheduleFacts{
        .shape = plan.shape,
        .block_rows = plan.block_rows,
        .block_keys = plan.block_keys,
        .panel_width = layout.panel_width,
        .key_depth = layout.d,
        .value_width = value_width,
        .dv_padded = plan.dv_padded,
        .score_depth = plan.score_depth,
        .chunk_bytes = plan.chunk_bytes,
        .packed_budget_bytes = plan.packed_budget_bytes,
        .widest = plan.widest_keys,
        .threads = threads,
        .values_in_place = values_in_place,
        .heads_differ = plan.bias.enabled() || plan.additive.enabled() || !plan.sinks.empty() ||
                        (!plan.score_bias.empty() && plan.score_bias.strides[1] != 0),
        .keys_need_packing = plan.rope.enabled() || plan.additive.enabled(),
        .rows_contiguous = k.strides[3] == 1 && v.strides[3] == 1,
        .sink_keys = plan.visibility.has_sink_keys(),
    };
  }

  // Row j of head (b, h) of an input where it lies.
  template <class E>
  static const E* caller_row(const HeadsView<const E>& view, std::int64_t b, std::int64_t h, std::int64_t j) {
    return view.data + b * view.strides[0] + h * view.strides[1] + j * view.strides[2];
  }
  // The same row as the fp32 the packed kernels read in place; other inputs are packed.
  template <class E>
  static const float* row_in_place(const HeadsView<const E>& view, std::int64_t b, std::int64_t h, std::int64_t j) {
    if constexpr (kReadInPlace<E>) {
      return caller_row(view, b, h, j);
    } else {
      return nullptr;
    }
  }

  // Key panels [p0, p1) of kv head `head` (b · kv_heads + h) into `keys`, and their value
  // rows into `values` unless it is null (values read in place).
  void pack_panels(std::int64_t head, std::int64_t p0, std::int64_t p1, float* keys, float* values,
                   PanelStores stores, KeyReads reads = KeyReads::in_place) const {
    const std::int64_t b = head / plan.shape.kv_heads, h = head % plan.shape.kv_heads;
    const RotaryTable* rope = plan.rope.enabled() ? &plan.rope : nullptr;
    if (quads != nullptr) {
      pack_int8_key_panels(plan, k, b, h, layout, p0, p1, key_means.data() + head * plan.shape.d, keys, stores);
      if (values != nullptr) pack_quantized_values(b, h, p0, p1, values);
      return;
    }
    if constexpr (kBf16Inputs) {
      if (pairs != nullptr) {  // as they are: the score scale is applied by the kernel
        pack_key_pair_panels(*pairs, k, b, h, layout, p0, p1, reinterpret_cast<bf16*>(keys), stores, rope);
        if (values != nullptr) {
          pack_value_pair_rows(pairs->pack_value_pairs, v, b, h, layout, p0, p1, reinterpret_cast<bf16*>(values));
        }
        return;
      }
    }
    if (plan.additive.enabled()) {
      pack_projected_key_panels(*plan.kernels, k, plan.additive.wk, b, h, layout, p0, p1, keys, stores);
    } else {
      pack_key_panels(*plan.kernels, k, b, h, layout, p0, p1, plan.packed_key_scale, keys, stores, rope, reads);
    }
    if (values != nullptr) pack_value_rows(*plan.kernels, v, b, h, layout, p0, p1, values);
  }

  // The block's query rows, score_depth floats apart: q's own fp32 rows where they lie so (the
  // score scale is in the packed keys), else copied (bf16: widened), rotated (RoPE) or
  // projected (additive scores) into `buffer`. Rows far apart (BNHD) are copied: read in
  // place, 96 rows 2 KiB apart would fall into a few L1 sets.
  const float* query_rows(float* buffer, std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows) const {
    const Q* q_head = q.data + b * q.strides[0] + h * q.strides[1];
    if (plan.additive.enabled()) {
      project_queries(q_head, i0, rows, buffer);
      return buffer;
    }
    if constexpr (kBf16Inputs) {
      if (pairs != nullptr) return query_pair_rows(buffer, q_head, i0, rows);
    }
    if (quads != nullptr) {  // the fp32 rows staged past the quantized ones
      const float* rows_f = fp32_query_rows(buffer + rows * query_units, q_head, i0, rows);
      const std::int64_t head = b * plan.shape.kv_heads + h / plan.shape.group();
      quantize_query_rows(*quads, plan, rows_f, rows, key_means.data() + head * plan.shape.d, buffer);
      return buffer;
    }
    return fp32_query_rows(buffer, q_head, i0, rows);
  }

  // The block's query rows as fp32, D floats apart: q's own rows where they lie so, else
  // copied (widened) and rotated into `buffer`.
  const float* fp32_query_rows(float* buffer, const Q* q_head, std::int64_t i0, std::int64_t rows) const {
    const std::int64_t D = plan.shape.d, first_position = i0 + plan.query_offset;
    if constexpr (kReadInPlace<Q>) {
      if (plan.rope.enabled()) {
        for (std::int64_t r = 0; r < rows; ++r) {
          plan.rope.rotate(q_head + (i0 + r) * q.strides[2], q.strides[3], first_position + r, 1.0f, buffer + r * D);
        }
        return buffer;
      }
      if (q_rows_back_to_back) return q_head + i0 * D;
    }
    for (std::int64_t r = 0; r < rows; ++r) {  // copied (widened), then rotated there
      float* row = buffer + r * D;
      widen_row(*plan.kernels, q_head + (i0 + r) * q.strides[2], q.strides[3], D, row);
      if (plan.rope.enabled()) plan.rope.rotate(row, 1, first_position + r, 1.0f, row);
    }
    return buffer;
  }

  // For the int8 scores: value pair rows (bf16 values as they are, fp32 ones rounded) for a
  // P·V in bf16, else fp32 rows.
  void pack_quantized_values(std::int64_t b, std::int64_t h, std::int64_t p0, std::int64_t p1, float* values) const {
    if (value_pairs == nullptr) {
      pack_value_rows(*plan.kernels, v, b, h, layout, p0, p1, values);
    } else if constexpr (std::is_same_v<KV, bf16>) {
      pack_value_pair_rows(value_pairs->pack_value_pairs, v, b, h, layout, p0, p1, reinterpret_cast<bf16*>(values));
    } else {
      pack_value_pair_rows(quads->pack_value_pairs, v, b, h, layout, p0, p1, reinterpret_cast<bf16*>(values));
    }
  }

  // 4-byte units per packed key.
  std::int64_t packed_key_units() const {
    if (quads != nullptr) return simd::int8_quads(plan.shape.d) + simd::kInt8PanelTail;
    return pairs != nullptr ? (plan.shape.d + 1) / 2 : plan.score_depth;
  }

  // For the bf16 products: rows of layout.d pairs, an odd D's last pair completed by a zero;
  // q's own rows where they are such rows.
  const float* query_pair_rows(float* buffer, const Q* q_head, std::int64_t i0, std::int64_t rows) const {
    const std::int64_t D = plan.shape.d;
    const bf16* first = q_head + i0 * q.strides[2];
    if (!plan.rope.enabled() && q_rows_back_to_back && D % 2 == 0 &&
        reinterpret_cast<std::uintptr_t>(first) % sizeof(float) == 0) {
      return reinterpret_cast<const float*>(first);
    }
    const std::int64_t padded = 2 * layout.d;
    bf16* rows_out = reinterpret_cast<bf16*>(buffer);
    std::vector<float> rotated(plan.rope.enabled() ? static_cast<std::size_t>(D) : 0);
    for (std::int64_t r = 0; r < rows; ++r) {
      const bf16* query = q_head + (i0 + r) * q.strides[2];
      bf16* row = rows_out + r * padded;
      if (plan.rope.enabled()) {  // widened, rotated, rounded back to bf16, as the keys are
        widen_row(*plan.kernels, query, q.strides[3], D, rotated.data());
        plan.rope.rotate(rotated.data(), 1, i0 + r + plan.query_offset, 1.0f, rotated.data());
        for (std::int64_t d = 0; d < D; ++d) row[d] = bf16(rotated[d]);
      } else if (q.strides[3] == 1) {
        std::copy_n(query, D, row);
      } else {
        for (std::int64_t d = 0; d < D; ++d) row[d] = query[d * q.strides[3]];
      }
      std::fill(row + D, row + padded, bf16());
    }
    return buffer;
  }

  // Additive scoring: qp[r][a] = Σ_d Wq[a][d] q[i0 + r][d].
  void project_queries(const Q* q_head, std::int64_t i0, std::int64_t rows, float* qp) const {
    const TensorView<const float, 2>& wq = plan.additive.wq;
    const std::int64_t Da = plan.score_depth, D = plan.shape.d;
    for (std::int64_t r = 0; r < rows; ++r) {
      const Q* query = q_head + (i0 + r) * q.strides[2];
      for (std::int64_t a = 0; a < Da; ++a) {
        float sum = 0;
        for (std::int64_t d = 0; d < D; ++d) {
          sum += wq.data[a * wq.strides[0] + d * wq.strides[1]] * to_float(query[d * q.strides[3]]);
        }
        qp[r * Da + a] = sum;
      }
    }
  }

  // Queues the rows of k and v of keys [j0, j1) of kv head h.
  void queue_key_rows(simd::PrefetchQueue& queue, std::int64_t b, std::int64_t h, std::int64_t j0,
                      std::int64_t j1) const {
    if (j1 <= j0) return;
    constexpr std::int64_t E = sizeof(KV);
    if (k.strides[3] == 1) queue.add_rows(caller_row(k, b, h, j0), j1 - j0, plan.shape.d * E, k.strides[2] * E);
    if (v.strides[3] == 1) queue.add_rows(caller_row(v, b, h, j0), j1 - j0, plan.shape.dv * E, v.strides[2] * E);
  }

  // Queues the rows of q and out of query head qh's query block at row i0.
  void queue_rows(simd::PrefetchQueue& queue, std::int64_t b, std::int64_t qh, std::int64_t i0) const {
    const std::int64_t rows = std::min(plan.block_rows, plan.shape.nq - i0);
    constexpr std::int64_t E = sizeof(Q), F = sizeof(float);
    if (q.strides[3] == 1) queue.add_rows(caller_row(q, b, qh, i0), rows, plan.shape.d * E, q.strides[2] * E);
    const float* out_rows = out.data + b * out.strides[0] + qh * out.strides[1] + i0 * out.strides[2];
    if (out.strides[3] == 1) queue.add_rows(out_rows, rows, plan.shape.dv * F, out.strides[2] * F);
  }
};

}  // namespace longattn::engine
