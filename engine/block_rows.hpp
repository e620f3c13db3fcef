// A query block's rows at its start and end: state started or taken over from the last key
// chunk, and at the end the output divided by its sum (with lse) or the state handed on.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>

#include "engine/block_scratch.hpp"
#include "engine/flash_inputs.hpp"

namespace longattn::engine {

template <class Q, class KV>
class BlockRows {
 public:
  explicit BlockRows(const FlashInputs<Q, KV>& in) : in_(in) {}

  // Rows [i0, i0 + rows) of query head h as a block, their state in rows [slot, slot + rows)
  // of the scratch: started, or taken from where the last chunk left it.
  RowState open(BlockScratch& scratch, std::int64_t slot, std::int64_t b, std::int64_t h, std::int64_t i0,
                std::int64_t rows, const Handoff& handoff) const {
    const std::int64_t W = in_.plan.dv_padded;
    RowState st(scratch.rows.data() + slot, in_.plan.block_rows);
    st.q = in_.query_rows(scratch.q.data() + slot * in_.query_units, b, h, i0, rows);
    st.acc = handoff.partial != nullptr     ? handoff.partial + i0 * W
             : accumulates_in_out(handoff) ? out_row(b, h, i0)
                                           : scratch.acc.data() + slot * W;
    if (handoff.first) {
      start(st, rows);
    } else {
      restore(st, handoff.carry, b, h, i0, rows, accumulates_in_scratch(handoff));
    }
    return st;
  }

  // A fresh state: no key seen, nothing accumulated.
  void start(RowState& st, std::int64_t rows) const {
    std::fill(st.max, st.max + rows, -std::numeric_limits<float>::infinity());
    std::fill(st.sum, st.sum + rows, 0.0f);
    std::fill(st.acc, st.acc + rows * in_.plan.dv_padded, 0.0f);
  }

  // The block's output written, or its state left for the next chunk.
  void close(const RowState& st, std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows,
             const Handoff& handoff) const {
    if (handoff.last) {
      write(st, b, h, i0, rows, handoff.out_prefetched);
    } else {
      save(st, handoff.carry, b, h, i0, rows, accumulates_in_scratch(handoff));
    }
  }

  // What each row's output is multiplied by once its keys are done: softmax divides by its
  // sum (a row that saw no key gets zeros, a NaN sum NaN), relu by Nk, sigmoid's weights
  // stand as they are.
  float output_scale(float sum) const {
    switch (in_.plan.normalizer) {
      case Normalizer::relu: return 1.0f / static_cast<float>(std::max<std::int64_t>(1, in_.plan.shape.nk));
      case Normalizer::sigmoid: return 1.0f;
      default: return sum > 0.0f || std::isnan(sum) ? 1.0f / sum : 0.0f;
    }
  }

  // Folds query head h's sink (a logit of its own in every row's denominator, with no value)
  // into a row's max and sum; returns the factor the row's accumulator takes for the new max
  // (1 without sinks). A row that saw no key gets sum 1 at the sink's max: zeros, lse = sink.
  float fold_sink(std::int64_t h, float& max, float& sum) const {
    if (in_.plan.sinks.empty() || in_.plan.sinks[h] == -std::numeric_limits<float>::infinity()) return 1.0f;
    const float sink = in_.plan.sinks[h], grown = std::isnan(max) ? max : std::max(max, sink);
    const float factor = std::exp2(max - grown);
    sum = sum * factor + std::exp2(sink - grown);
    max = grown;
    return factor;
  }

  // lse = ln(Σ e^s) = ln2 · (max + log2 sum): -inf for a row that saw no key, NaN for a NaN sum.
  void write_lse(std::int64_t b, std::int64_t h, std::int64_t i, float max, float sum) const {
    if (in_.lse.empty()) return;
    in_.lse.data[b * in_.lse.strides[0] + h * in_.lse.strides[1] + i * in_.lse.strides[2]] =
        sum > 0.0f || std::isnan(sum) ? std::numbers::ln2_v<float> * (max + std::log2(sum))
                                      : -std::numeric_limits<float>::infinity();
  }

  // What row r's scores lost to the int8 scores' smoothing (0 without them): its max gets it
  // back before the sink and lse see it.
  float score_offset(const RowState& st, std::int64_t r) const {
    return in_.quads == nullptr ? 0.0f : int8_score_offset(st.q + r * in_.query_units, in_.plan.shape.d);
  }

  float* out_row(std::int64_t b, std::int64_t h, std::int64_t i) const {
    return in_.out.data + b * in_.out.strides[0] + h * in_.out.strides[1] + i * in_.out.strides[2];
  }

 private:
  // While a block's keys come in several chunks, its output accumulates in out's own rows
  // where they lie like the accumulator's: nothing is copied out and back between chunks.
  bool accumulates_in_out(const Handoff& handoff) const {
    return handoff.partial == nullptr && handoff.carry != nullptr && in_.out_rows_like_acc;
  }
  bool accumulates_in_scratch(const Handoff& handoff) const {
    return handoff.partial == nullptr && !accumulates_in_out(handoff);
  }

  // Between key chunks max and sum wait in carry; the unnormalized accumulator in `out`,
  // copied there when it is not kept there.
  void save(const RowState& st, float* carry, std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows,
            bool copy_acc) const {
    const std::int64_t W = in_.plan.dv_padded, nq = in_.plan.shape.nq, dv = in_.plan.shape.dv;
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = out_row(b, h, i0 + r);
      if (copy_acc && in_.out.strides[3] == 1) {
        std::copy_n(st.acc + r * W, dv, row);
      } else if (copy_acc) {
        for (std::int64_t c = 0; c < dv; ++c) row[c * in_.out.strides[3]] = st.acc[r * W + c];
      }
      carry[i0 + r] = st.max[r];
      carry[nq + i0 + r] = st.sum[r];
    }
  }

  void restore(RowState& st, const float* carry, std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows,
               bool copy_acc) const {
    const std::int64_t W = in_.plan.dv_padded, nq = in_.plan.shape.nq, dv = in_.plan.shape.dv;
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* row = out_row(b, h, i0 + r);
      float* acc = st.acc + r * W;
      if (copy_acc) {
        if (in_.out.strides[3] == 1) {
          std::copy_n(row, dv, acc);
        } else {
          for (std::int64_t c = 0; c < dv; ++c) acc[c] = row[c * in_.out.strides[3]];
        }
        std::fill(acc + dv, acc + W, 0.0f);
      }
      st.max[r] = carry[i0 + r];
      st.sum[r] = carry[nq + i0 + r];
    }
  }

  // out = acc · output_scale once per row (in place when acc is out's rows), and lse.
  void write(const RowState& st, std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows,
             bool out_prefetched) const {
    const std::int64_t W = in_.plan.dv_padded, dv = in_.plan.shape.dv;
    float* inv = st.rescale;  // free once the block's last tile is done
    for (std::int64_t r = 0; r < rows; ++r) {
      float max = st.max[r] + score_offset(st, r), sum = st.sum[r];
      const float factor = fold_sink(h, max, sum);
      inv[r] = factor * output_scale(sum);
      write_lse(b, h, i0 + r, max, sum);
    }
    float* first_row = out_row(b, h, i0);
    if (in_.out.strides[3] == 1) {
      // Lines the accumulator already holds in the cache are written back as they are.
      const bool streamed = !out_prefetched && st.acc != first_row;
      in_.plan.kernels->elementwise.scale_rows(st.acc, rows, W, inv, first_row, in_.out.strides[2], dv, streamed);
      return;
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = first_row + r * in_.out.strides[2];
      for (std::int64_t c = 0; c < dv; ++c) row[c * in_.out.strides[3]] = st.acc[r * W + c] * inv[r];
    }
  }

  const FlashInputs<Q, KV>& in_;
};

}  // namespace longattn::engine
