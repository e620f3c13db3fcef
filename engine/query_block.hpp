// One query block against the keys it sees (FlashAttention-2's inner loop, DESIGN.md §3): its
// rows' state opened or taken over, the key tiles planned, each tile run as scores →
// normalize → accumulate, and the rows written or handed on. Every schedule runs blocks
// through this, so a block computes the same bits whichever schedule runs it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/block_rows.hpp"
#include "engine/block_scratch.hpp"
#include "engine/flash_inputs.hpp"

namespace longattn::engine {

// Partial tiles are run in slices of this many query rows, each over the panels its rows can
// see, so a window's edges and the causal diagonal waste fewer masked scores (bench/TUNING.md
// "Slices of partial tiles"). A multiple of every target's row group (6 and 4).
constexpr std::int64_t kSliceRows = 12;

// A tile run against its rows' running max (no tile max) keeps each row's probabilities at
// most this large (2^20, a row max stale by at most 20 in log2 units): the output and sums
// stay far from overflow for any sequence length; past it, the tile is taken again with its
// max.
constexpr float kLazySumLimit = 1 << 20;

template <class Q, class KV>
class QueryBlocks {
 public:
  explicit QueryBlocks(const FlashInputs<Q, KV>& in) : in_(in), rows_(in) {}

  const BlockRows<Q, KV>& rows() const { return rows_; }

  // Rows [i0, i0 + Br) of query head h against `keys`, their state taken from and left as
  // `handoff` says.
  void run(BlockScratch& scratch, std::int64_t b, std::int64_t h, std::int64_t i0, const KeyChunk<KV>& keys,
           const Handoff& handoff) const {
    const std::int64_t rows = std::min(in_.plan.block_rows, in_.plan.shape.nq - i0);
    RowState st = rows_.open(scratch, 0, b, h, i0, rows, handoff);
    plan_tiles(scratch, b, i0, rows, keys.begin, keys.end);
    for (const KeyRange& tile : scratch.tiles) run_tiles(scratch, st, keys, b, h, i0, rows, tile.begin, tile.end);
    rows_.close(st, b, h, i0, rows, handoff);
  }

  // The tiles (scratch.tiles) rows [i0, i0 + rows) run over keys [begin, end) (multiples of
  // Bc and P, so tiles keep their panel alignment), in the order they run.
  void plan_tiles(BlockScratch& scratch, std::int64_t b, std::int64_t i0, std::int64_t rows, std::int64_t begin,
                  std::int64_t end) const {
    const FlashPlan& plan = in_.plan;
    const std::int64_t P = plan.kernels->panel_width, Bc = plan.block_keys, i1 = i0 + rows;
    plan.visibility.key_ranges(b, i0, i1, scratch.key_ranges);
    // Tiles are cut apart where every row starts and stops seeing keys (the panel-aligned
    // common range), so a window's edges and the causal diagonal fall in narrow partial
    // tiles and the keys all rows see run in full tiles.
    const KeyRange common = plan.visibility.common(b, i0, i1);
    const std::int64_t full_begin = (common.begin + P - 1) / P * P, full_end = common.end / P * P;
    scratch.tiles.clear();
    for (const KeyRange& range : scratch.key_ranges) {
      const std::int64_t first = std::max(range.begin, begin), last = std::min(range.end, end);
      if (first >= last) continue;  // a range beside these keys (std::clamp below needs first <= last)
      std::int64_t cuts[4] = {first, first, last, last};
      if (full_begin < full_end) {
        cuts[1] = std::clamp(full_begin, first, last);
        cuts[2] = std::clamp(full_end, cuts[1], last);
      }
      for (int segment = 0; segment < 3; ++segment) {
        for (std::int64_t j0 = cuts[segment], width; j0 < cuts[segment + 1]; j0 += width) {
          width = cuts[segment + 1] - j0 <= plan.max_tile_keys() ? cuts[segment + 1] - j0 : Bc;
          scratch.tiles.push_back({j0, j0 + width});
        }
      }
    }
    if (plan.bias.enabled()) nearest_tiles_first(scratch, b, i0, rows);
  }

  // The rows of the query block against keys [j0, j1) (j0 panel-aligned): one full tile, or
  // row slices over only the keys they can see, a vector of keys at a time (whole panels for
  // additive scores, whose kernel works on panels), masked where needed.
  void run_tiles(BlockScratch& scratch, RowState& st, const KeyChunk<KV>& keys, std::int64_t b, std::int64_t h,
                 std::int64_t i0, std::int64_t rows, std::int64_t j0, std::int64_t j1) const {
    const FlashPlan& plan = in_.plan;
    const std::int64_t P = plan.kernels->panel_width;
    const std::int64_t end = j0 + (j1 - j0 + P - 1) / P * P;
    // A stacked block's rows hold the same queries once per head: one slice of them all.
    const std::int64_t positions = st.queries_per_head != 0 ? st.queries_per_head : rows;
    const TileKind kind = plan.visibility.classify(b, i0, i0 + positions, j0, end);
    if (kind != TileKind::partial) {
      if (kind == TileKind::full) run_tile(scratch, st, keys, {b, h, i0, 0, rows, j0, end - j0, false, true});
      return;
    }
    const bool finite = values_finite(keys, j0, end);
    const std::int64_t grain = plan.additive.enabled() ? P : plan.kernels->lanes;
    const std::int64_t slice = st.queries_per_head != 0 ? rows : kSliceRows;
    for (std::int64_t r0 = 0; r0 < rows; r0 += slice) {
      const std::int64_t n = std::min(slice, rows - r0), i1 = i0 + r0 + std::min(n, positions);
      const auto [lo, hi] = plan.visibility.seen_within(b, i0 + r0, i1, j0, end);
      if (hi <= lo) continue;  // these rows see nothing here: their state stays as it is
      const std::int64_t k0 = lo / grain * grain, k1 = std::min(end, (hi + grain - 1) / grain * grain);
      const TileKind part = plan.visibility.classify(b, i0 + r0, i1, k0, k1);
      if (part != TileKind::skipped) {
        run_tile(scratch, st, keys, {b, h, i0, r0, n, k0, k1 - k0, part == TileKind::partial, finite});
      }
    }
  }

 private:
  // Rows [r0, r0 + n) of the block of query head h at row i0 against keys [j0, j0 + width)
  // (j0 and width multiples of lanes), element masks applied when `masked`.
  struct Tile {
    std::int64_t b, h, i0, r0, n, j0, width;
    bool masked;
    bool values_finite;  // no NaN or inf in the keys' value rows (checked for masked tiles)
  };

  // Nearest keys first: a position bias is largest there (ALiBi's falls off with the
  // distance), so the rows' running max is set early and the farther tiles run lazily. Sink
  // keys left of the window still run before it, as they do where a schedule hands them to
  // the block as a chunk of their own (bands): the order, and so the bits, are the same
  // either way.
  void nearest_tiles_first(BlockScratch& scratch, std::int64_t b, std::int64_t i0, std::int64_t rows) const {
    const std::int64_t p0 = i0 + in_.plan.query_offset, p1 = p0 + rows - 1;
    const std::int64_t window_begin = in_.plan.visibility.window_hull(b, i0, i0 + rows).begin;
    auto order = [&](const KeyRange& t) {
      return std::pair{t.end <= window_begin ? 0 : 1, std::max({std::int64_t{0}, t.begin - p1, p0 - (t.end - 1)})};
    };
    std::stable_sort(scratch.tiles.begin(), scratch.tiles.end(),
                     [&](const KeyRange& x, const KeyRange& y) { return order(x) < order(y); });
  }

  // One tile, as FlashAttention-2 takes it: scores (with masks and position terms), then the
  // online-softmax step (or another normalizer's weights), then P·V into the accumulator.
  void run_tile(BlockScratch& scratch, RowState& st, const KeyChunk<KV>& keys, const Tile& t) const {
    scratch.computed_pairs += t.n * t.width;
    float* s = scratch.scores.data() + t.r0 * in_.plan.max_tile_keys();
    std::fill(st.tile_max + t.r0, st.tile_max + t.r0 + t.n, -std::numeric_limits<float>::infinity());
    const bool lazy = runs_lazily(st, keys, t);
    const float* diagonals = bias_diagonals(scratch, t);
    // The packed-key kernels cap scores in registers; additive and in-place scores take a pass,
    // before the position bias joins them.
    const bool capped_after = in_.plan.softcap > 0 && (in_.plan.additive.enabled() || keys.rows_in_place());
    compute_scores(scratch, st, keys, t, lazy, capped_after ? nullptr : diagonals, s);
    if (capped_after) cap_scores(st, t, diagonals, s);
    if (!in_.plan.score_bias.empty()) add_score_bias(st, t, s);
    if (t.masked && !lazy) mask_rows(st, t, s);
    if (in_.plan.normalizer != Normalizer::softmax) {
      weigh_without_max(t.n, s, t.width);
      accumulate(scratch, st, keys, t, s, nullptr, false);
      return;
    }
    const bool exponentiated = lazy && probabilities_stay_small(scratch, st, keys, t, diagonals, s);
    if (exponentiated) {  // the running max stands: nothing to rescale
      for (std::int64_t r = t.r0; r < t.r0 + t.n; ++r) st.sum[r] += st.tile_sum[r];
    } else {
      if (t.masked || !in_.plan.score_bias.empty()) {
        for (std::int64_t r = 0; r < t.n; ++r) {
          st.tile_max[t.r0 + r] = in_.plan.kernels->elementwise.max_of(s + r * ldS(), t.width);
        }
      }
      softmax_step(st, t.r0, t.n, s, t.width);
    }
    accumulate(scratch, st, keys, t, s, exponentiated ? nullptr : st.rescale + t.r0, exponentiated);
  }

  std::int64_t ldS() const { return in_.plan.max_tile_keys(); }
  std::int64_t quads() const { return simd::int8_quads(in_.plan.shape.d); }

  // Once every row has a finite max, softmax scores skip the tile max: the running max stays
  // the shift (exact for any shift) unless a row's probabilities outgrow kLazySumLimit, and
  // the QKᵀ kernel takes exp2 on the scores still in registers. A masked tile whose rows each
  // see an interval of its keys (a window's edge, the causal diagonal) takes that path too,
  // the kernel zeroing the probabilities outside each row's interval (bench/TUNING.md "Lazy
  // tiles"). Keys read in place have no exp2 in their kernel.
  bool runs_lazily(const RowState& st, const KeyChunk<KV>& keys, const Tile& t) const {
    const FlashPlan& plan = in_.plan;
    const bool bounded = t.masked && plan.visibility.rows_see_intervals(t.j0);
    const float* max = st.max + t.r0;
    return (!t.masked || bounded) && plan.normalizer == Normalizer::softmax && !plan.additive.enabled() &&
           plan.score_bias.empty() && !keys.rows_in_place() &&
           std::none_of(max, max + t.n, [](float m) { return m == -std::numeric_limits<float>::infinity(); });
  }

  // A position bias (ALiBi, relative) depends on the key's offset from the query alone: laid
  // out along the tile's diagonals, it is where the QKᵀ kernel starts its scores. Row r,
  // column c sits at offset δ = j0 + c - (pos of row 0) - r: diagonal d = c + n - 1 - r holds
  // the bias of δ = j0 - pos0 - (n - 1) + d. Null without a bias.
  const float* bias_diagonals(BlockScratch& scratch, const Tile& t) const {
    const FlashPlan& plan = in_.plan;
    if (!plan.bias.enabled()) return nullptr;
    const std::int64_t first_position = t.i0 + t.r0 + plan.query_offset;
    plan.bias.fill(t.h, t.j0 - first_position - (t.n - 1), t.n - 1 + t.width, scratch.diagonals.data());
    return scratch.diagonals.data();
  }

  // The tile's scores into s: lazily, 2^(score - running max) and their row sums (row bounds
  // zeroing what a masked row does not see); otherwise raw scores and their row maxima.
  void compute_scores(BlockScratch& scratch, RowState& st, const KeyChunk<KV>& keys, const Tile& t, bool lazy,
                      const float* diagonals, float* s) const {
    const simd::KernelTable& kern = *in_.plan.kernels;
    const std::int64_t P = kern.panel_width, panel_begin = t.j0 / P * P;
    const float* q = st.q + t.r0 * in_.query_units;
    float* tile_max = st.tile_max + t.r0;
    const float* key_panels =
        keys.rows_in_place() ? nullptr : keys.key_panels + (panel_begin - keys.begin) * in_.layout.d;
    if (in_.plan.additive.enabled()) {  // j0 and width are whole panels here
      kern.tile.additive_tile(q, t.n, in_.layout.d, key_panels, t.width / P, in_.plan.additive.w.data(),
                         in_.plan.score_scale, s, ldS(), tile_max);
      if (diagonals != nullptr) {
        std::fill(tile_max, tile_max + t.n, -std::numeric_limits<float>::infinity());
        kern.elementwise.add_diagonal_bias(s, t.n, ldS(), t.width, diagonals, tile_max);
      }
    } else if (keys.rows_in_place()) {
      scores_in_place(scratch, q, t.n, keys, t.j0, t.width, s);
      if (diagonals != nullptr) {
        kern.elementwise.add_diagonal_bias(s, t.n, ldS(), t.width, diagonals, tile_max);
      } else if (!t.masked) {
        for (std::int64_t r = 0; r < t.n; ++r) tile_max[r] = kern.elementwise.max_of(s + r * ldS(), t.width);
      }
    } else if (lazy) {
      float* shift = st.shift + t.r0;
      for (std::int64_t r = 0; r < t.n; ++r) shift[r] = -st.max[t.r0 + r];
      const simd::ScoreTerms terms{diagonals, t.masked ? row_bounds(scratch, st, t) : nullptr, in_.plan.softcap};
      qk_probabilities(q, t.n, key_panels, t.j0 - panel_begin, t.width, s, shift, terms, st.tile_sum + t.r0,
                       scratch.prefetch);
    } else {
      qk_scores(q, t.n, key_panels, t.j0 - panel_begin, t.width, s, {diagonals, nullptr, in_.plan.softcap}, tile_max,
                scratch.prefetch);
    }
  }

  // Soft-capping on the tile's scores, then the position bias (its diagonals, when any).
  // The rows' tile max is the capped scores' (with the bias, when there is one).
  void cap_scores(RowState& st, const Tile& t, const float* diagonals, float* s) const {
    const simd::ElementwiseKernels& kern = in_.plan.kernels->elementwise;
    float* tile_max = st.tile_max + t.r0;
    std::fill(tile_max, tile_max + t.n, -std::numeric_limits<float>::infinity());
    kern.softcap_rows(s, t.n, ldS(), t.width, in_.plan.softcap, tile_max);
    if (diagonals == nullptr) return;
    std::fill(tile_max, tile_max + t.n, -std::numeric_limits<float>::infinity());
    kern.add_diagonal_bias(s, t.n, ldS(), t.width, diagonals, tile_max);
  }

  // The caller's score bias, in the kernel's score units, added to the tile's scores (keys
  // past Nk have none: their scores stay -inf).
  void add_score_bias(const RowState& st, const Tile& t, float* s) const {
    const TensorView<const float, 4>& bias = in_.plan.score_bias;
    const float unit = in_.plan.score_scale;
    const std::int64_t keys = std::min(t.width, in_.plan.shape.nk - t.j0), step = bias.strides[3];
    for_each_run(st, t.i0, t.r0, t.n, [&](std::int64_t i, std::int64_t count, std::int64_t row) {
      for (std::int64_t r = 0; r < count; ++r) {
        const float* from =
            bias.data + t.b * bias.strides[0] + t.h * bias.strides[1] + (i + r) * bias.strides[2] + t.j0 * step;
        float* scores = s + (row + r) * ldS();
        for (std::int64_t c = 0; c < keys; ++c) scores[c] += from[c * step] * unit;
      }
    });
  }

  // The keys each row of a masked tile sees, as intervals (rows_see_intervals).
  const std::int32_t* row_bounds(BlockScratch& scratch, const RowState& st, const Tile& t) const {
    for_each_run(st, t.i0, t.r0, t.n, [&](std::int64_t i, std::int64_t count, std::int64_t row) {
      in_.plan.visibility.row_bounds(t.b, i, count, t.j0, t.width, scratch.bounds.data() + 2 * row);
    });
    return scratch.bounds.data();
  }

  // Whether a lazy tile's probabilities stayed within kLazySumLimit (!(x <= limit) also
  // catches a sum that overflowed to inf); if not, its scores are taken again with their max.
  bool probabilities_stay_small(BlockScratch& scratch, RowState& st, const KeyChunk<KV>& keys, const Tile& t,
                                const float* diagonals, float* s) const {
    const float* tile_sum = st.tile_sum + t.r0;
    if (std::none_of(tile_sum, tile_sum + t.n, [](float x) { return !(x <= kLazySumLimit); })) return true;
    compute_scores(scratch, st, keys, t, false, diagonals, s);
    if (t.masked) mask_rows(st, t, s);
    return false;
  }

  // acc = acc · row_scale + P·V over the tile's keys (keys past Nk have probability 0 and no
  // value row to read: v may end there). p_in_bf16: the QKᵀ kernel stored P in bf16 (the
  // bf16 products' lazy tiles).
  void accumulate(BlockScratch& scratch, RowState& st, const KeyChunk<KV>& keys, const Tile& t, float* s,
                  const float* row_scale, bool p_in_bf16) const {
    const simd::KernelTable& kern = *in_.plan.kernels;
    const std::int64_t W = in_.plan.dv_padded, value_keys = std::min(t.width, in_.plan.shape.nk - t.j0);
    const std::int64_t value_offset = (t.j0 - keys.begin) * keys.value_stride;
    float* acc = st.acc + t.r0 * W;
    if (t.masked && !t.values_finite) {
      accumulate_seen(st, keys, t, s, row_scale, p_in_bf16 && in_.value_pairs != nullptr);
    } else if (keys.quantized_rows()) {
      pv_rows(kern, s, t.n, ldS(), value_keys, keys.quantized.values + value_offset,
              keys.quantized.value_scales + (t.j0 - keys.begin), keys.value_stride, in_.plan.shape.dv, acc, W,
              row_scale);
    } else if (keys.rows_in_place()) {
      pv_rows(kern, s, t.n, ldS(), value_keys, keys.caller_value_rows + value_offset, keys.value_stride,
              in_.plan.shape.dv, acc, W, row_scale);
    } else if (in_.value_pairs != nullptr) {  // value_offset: half a pair row per key, j0 - keys.begin even
      in_.value_pairs->pv_tile(s, t.n, ldS(), value_keys, reinterpret_cast<const bf16*>(keys.value_rows + value_offset), W,
                         acc, row_scale, p_in_bf16, scratch.prefetch);
    } else {
      kern.tile.pv_tile(s, t.n, ldS(), value_keys, keys.value_rows + value_offset, keys.value_stride, W, acc, row_scale,
                   scratch.prefetch);
    }
  }

  // Whether the value rows of keys [j0, end) hold finite numbers only (keys past Nk have none).
  bool values_finite(const KeyChunk<KV>& keys, std::int64_t j0, std::int64_t end) const {
    const simd::ElementwiseKernels& kern = in_.plan.kernels->elementwise;
    const std::int64_t count = std::min(end, in_.plan.shape.nk) - j0, dv = in_.plan.shape.dv;
    if (count <= 0) return true;
    const std::int64_t offset = (j0 - keys.begin) * keys.value_stride;
    if (keys.quantized_rows()) return true;  // int8 rows, and an int8 cache quantizes finite values alone
    if (keys.rows_in_place()) {
      const KV* rows = keys.caller_value_rows + offset;
      if constexpr (std::is_same_v<KV, bf16>) {
        return kern.all_finite_bf16(rows, count, keys.value_stride, dv);
      } else {
        return kern.all_finite(rows, count, keys.value_stride, dv);
      }
    }
    if (in_.value_pairs != nullptr) {  // rows of key pairs, 2 · dv_padded bf16 each (zeros past Dv)
      const auto* pairs = reinterpret_cast<const bf16*>(keys.value_rows + offset);
      return kern.all_finite_bf16(pairs, 1, 0, (count + 1) / 2 * 2 * in_.plan.dv_padded);
    }
    return kern.all_finite(keys.value_rows + offset, count, keys.value_stride, dv);
  }

  // acc = acc · row_scale + Σ p · v over the keys each row sees, one element at a time: for a
  // masked tile whose values hold a NaN or inf, which must reach the rows that see its key
  // and no other (the kernels multiply a hidden key's zero probability by its value, and
  // 0 · NaN is NaN).
  void accumulate_seen(const RowState& st, const KeyChunk<KV>& keys, const Tile& t, const float* s,
                       const float* row_scale, bool p_in_bf16) const {
    const std::int64_t W = in_.plan.dv_padded, value_keys = std::min(t.width, in_.plan.shape.nk - t.j0);
    std::vector<float> hidden(static_cast<std::size_t>(t.n * t.width), 0.0f);
    mask_rows(st, t, hidden.data(), t.width);  // -inf where the row does not see the key
    for (std::int64_t r = 0; r < t.n; ++r) {
      const float* p = s + r * ldS();
      float* acc = st.acc + (t.r0 + r) * W;
      for (std::int64_t c = 0; c < in_.plan.shape.dv; ++c) {
        float sum = acc[c] * (row_scale != nullptr ? row_scale[r] : 1.0f);
        for (std::int64_t j = 0; j < value_keys; ++j) {
          if (hidden[r * t.width + j] != 0.0f) continue;
          const float probability = p_in_bf16 ? static_cast<float>(reinterpret_cast<const bf16*>(p)[j]) : p[j];
          sum += probability * value(keys, t.j0 - keys.begin + j, c);
        }
        acc[c] = sum;
      }
    }
  }

  // Element c of the value of the chunk's key `key`, as accumulate's kernels read it.
  float value(const KeyChunk<KV>& keys, std::int64_t key, std::int64_t c) const {
    if (keys.quantized_rows()) {
      return keys.quantized.value_scales[key] * static_cast<float>(keys.quantized.values[key * keys.value_stride + c]);
    }
    if (keys.rows_in_place()) return to_float(keys.caller_value_rows[key * keys.value_stride + c]);
    if (in_.value_pairs != nullptr) {  // keys 2m and 2m + 1 interleaved in pair row m
      const auto* pairs = reinterpret_cast<const bf16*>(keys.value_rows);
      return static_cast<float>(pairs[key / 2 * 2 * in_.plan.dv_padded + 2 * c + key % 2]);
    }
    return keys.value_rows[key * keys.value_stride + c];
  }

  // simd's QKᵀ entry points on packed fp32, (pairs) bf16 pairs or (quads) int8 quads: q rows
  // query_units 4-byte units apart.
  void qk_scores(const float* q, std::int64_t n, const float* key_panels, std::int64_t first_key, std::int64_t keys,
                 float* s, simd::ScoreTerms terms, float* row_max, simd::PrefetchQueue& prefetch) const {
    if (in_.quads != nullptr) {
      in_.quads->qk_scores(reinterpret_cast<const std::int8_t*>(q), n, quads(),
                           reinterpret_cast<const std::uint8_t*>(key_panels), first_key, keys, s, ldS(), terms, row_max,
                           prefetch);
    } else if (in_.pairs != nullptr) {
      in_.pairs->qk_scores(reinterpret_cast<const bf16*>(q), n, in_.layout.d, reinterpret_cast<const bf16*>(key_panels),
                           first_key, keys, s, ldS(), in_.plan.key_scale, terms, row_max, prefetch);
    } else {
      in_.plan.kernels->tile.qk_scores(q, n, in_.layout.d, key_panels, first_key, keys, s, ldS(), terms, row_max,
                                       prefetch);
    }
  }
  void qk_probabilities(const float* q, std::int64_t n, const float* key_panels, std::int64_t first_key,
                        std::int64_t keys, float* s, const float* row_shift, simd::ScoreTerms terms, float* row_sum,
                        simd::PrefetchQueue& prefetch) const {
    if (in_.quads != nullptr) {
      in_.quads->qk_probabilities(reinterpret_cast<const std::int8_t*>(q), n, quads(),
                                  reinterpret_cast<const std::uint8_t*>(key_panels), first_key, keys, s, ldS(),
                                  row_shift, terms, row_sum, prefetch);
    } else if (in_.pairs != nullptr) {
      in_.pairs->qk_probabilities(reinterpret_cast<const bf16*>(q), n, in_.layout.d,
                                  reinterpret_cast<const bf16*>(key_panels), first_key, keys, s, ldS(),
                                  in_.plan.key_scale, row_shift, terms, row_sum, prefetch);
    } else {
      in_.plan.kernels->tile.qk_probabilities(q, n, in_.layout.d, key_panels, first_key, keys, s, ldS(), row_shift,
                                              terms, row_sum, prefetch);
    }
  }

  // Scores of n query rows against keys [j0, j0 + width) read where they lie (qk_rows; on an
  // int8 cache's rows with int8 scores, the queries quantized into the scratch first). Keys
  // past Nk have no row to read: their scores are -inf (the tile is masked there).
  void scores_in_place(BlockScratch& scratch, const float* q, std::int64_t n, const KeyChunk<KV>& keys,
                       std::int64_t j0, std::int64_t width, float* s) const {
    const std::int64_t valid = std::min(width, in_.plan.shape.nk - j0), first = j0 - keys.begin;
    if (keys.quantized_rows() && in_.plan.int8_rows != nullptr) {
      float* rows = scratch.quantized_q.data();
      quantize_query_rows(*in_.plan.int8_rows, in_.plan, q, n, nullptr, rows);
      in_.plan.int8_rows->qk_rows(reinterpret_cast<const std::int8_t*>(rows), n, in_.plan.shape.d,
                                  keys.quantized.keys + first * keys.key_row_stride, keys.key_row_stride,
                                  keys.quantized.key_scales + first, valid, s, ldS());
    } else if (keys.quantized_rows()) {
      qk_rows(*in_.plan.kernels, q, n, in_.query_units, in_.plan.score_depth,
              keys.quantized.keys + first * keys.key_row_stride, keys.quantized.key_scales + first,
              keys.key_row_stride, valid, in_.plan.key_scale, s, ldS());
    } else {
      qk_rows(*in_.plan.kernels, q, n, in_.query_units, in_.plan.score_depth, keys.key_rows + first * keys.key_row_stride,
              keys.key_row_stride, valid, in_.plan.key_scale, s, ldS());
    }
    for (std::int64_t r = 0; r < n; ++r) {
      std::fill(s + r * ldS() + valid, s + r * ldS() + width, -std::numeric_limits<float>::infinity());
    }
  }

  // visit(first query, count, first row) for each run of rows [r0, r0 + n) of a block at
  // consecutive query positions: the rows themselves, or (stacked) one run per head.
  template <class Visit>
  static void for_each_run(const RowState& st, std::int64_t i0, std::int64_t r0, std::int64_t n, Visit visit) {
    if (st.queries_per_head == 0) {
      visit(i0 + r0, n, 0);
      return;
    }
    for (std::int64_t r = r0, count; r < r0 + n; r += count) {
      const std::int64_t position = r % st.queries_per_head;
      count = std::min(st.queries_per_head - position, r0 + n - r);
      visit(i0 + position, count, r - r0);
    }
  }

  // Element masks on the tile's scores (rows lds floats apart).
  void mask_rows(const RowState& st, const Tile& t, float* s, std::int64_t lds) const {
    for_each_run(st, t.i0, t.r0, t.n, [&](std::int64_t i, std::int64_t count, std::int64_t row) {
      in_.plan.visibility.mask_tile(t.b, i, count, t.j0, t.width, s + row * lds, lds);
    });
  }
  void mask_rows(const RowState& st, const Tile& t, float* s) const { mask_rows(st, t, s, ldS()); }

  // Weights of their own for the normalizers without a running max, in place:
  // P = sigmoid(S + b) or relu(S) (relu's 1 / Nk is applied with the output).
  void weigh_without_max(std::int64_t n, float* s, std::int64_t width) const {
    if (in_.plan.normalizer == Normalizer::sigmoid) {
      in_.plan.kernels->elementwise.sigmoid_rows(s, n, ldS(), width, in_.plan.sigmoid_bias);
    } else {
      in_.plan.kernels->elementwise.relu_rows(s, n, ldS(), width);
    }
  }

  // The online-softmax step of rows [r0, r0 + n) of a tile of scores whose row maxima are in
  // tile_max: each row's running max raised to it, the factor (rescale) its output so far is
  // to be scaled by, the probabilities 2^(s - max) in place and the running sums.
  void softmax_step(RowState& st, std::int64_t r0, std::int64_t n, float* s, std::int64_t width) const {
    float *max = st.max + r0, *sum = st.sum + r0, *rescale = st.rescale + r0, *shift = st.shift + r0;
    for (std::int64_t r = 0; r < n; ++r) {
      const float grown = std::max(max[r], st.tile_max[r0 + r]);
      // Until a row has seen a visible key its max is -inf; exp2(-inf - 0) = 0 keeps every
      // probability and the (zero) accumulator exact without a NaN.
      rescale[r] = grown == max[r] ? 1.0f : std::exp2(max[r] - grown);
      shift[r] = grown == -std::numeric_limits<float>::infinity() ? 0.0f : grown;
      max[r] = grown;
    }
    float* tile_sum = st.tile_sum + r0;
    in_.plan.kernels->elementwise.exp2_rows(s, n, ldS(), width, shift, tile_sum);
    for (std::int64_t r = 0; r < n; ++r) sum[r] = sum[r] * rescale[r] + tile_sum[r];
  }

  const FlashInputs<Q, KV>& in_;
  BlockRows<Q, KV> rows_;
};

}  // namespace longattn::engine
