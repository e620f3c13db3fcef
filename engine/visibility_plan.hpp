// Which keys each query sees when every rule of DESIGN.md §1 is combined: window, key
// padding, an explicit boolean mask, a block-sparse layout. Built once per call, then asked
// per work unit, so that skipped keys cost nothing and only partial tiles evaluate masks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/attention_validation.hpp"
#include "engine/window_plan.hpp"
#include "longattn/options.hpp"

namespace longattn::engine {

class VisibilityPlan {
 public:
  // block_rows: the driver's query block (mask occupancy is counted per block and panel);
  // panel_width: the key granularity of the kernels.
  VisibilityPlan(const AttentionShape& shape, const AttentionOptions& options,
                 std::int64_t block_rows, std::int64_t panel_width);

  // The keys that query rows [i0, i1) of batch b may see, as sorted, disjoint ranges whose
  // starts are panel-aligned. i0 is a multiple of block_rows.
  void key_ranges(std::int64_t b, std::int64_t i0, std::int64_t i1,
                  std::vector<KeyRange>& out) const;

  // A range containing every key the rows [i0, i1) of batch b see (window, sink keys and
  // padding).
  KeyRange hull(std::int64_t b, std::int64_t i0, std::int64_t i1) const {
    KeyRange keys = window_hull(b, i0, i1);
    if (sinks_end(b, i1 - 1) > 0) keys.begin = 0;
    return keys;
  }

  // The smallest range of keys [j0, j1) holding every key rows [i0, i1) of batch b see there
  // (window, sink keys and padding).
  KeyRange seen_within(std::int64_t b, std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1) const {
    const KeyRange window = window_hull(b, i0, i1);
    const KeyRange in_window{std::max(window.begin, j0), std::min(window.end, j1)};
    const KeyRange in_sinks{j0, std::min(sinks_end(b, i1 - 1), j1)};
    if (in_sinks.empty()) return in_window;
    return in_window.empty() ? in_sinks : KeyRange{in_sinks.begin, in_window.end};
  }

  // The keys of rows [i0, i1) of batch b apart from the sink keys: window and padding.
  KeyRange window_hull(std::int64_t b, std::int64_t i0, std::int64_t i1) const {
    KeyRange keys = window_.keys_of_rows(i0, i1);
    keys.end = std::min(keys.end, key_length(b));
    return keys;
  }
  bool has_sink_keys() const { return sink_keys_ > 0; }
  // Row i of batch b sees the sink keys [0, sinks_end) (the window's right edge and padding
  // apply to them); 0 without sink keys. Non-decreasing in i.
  std::int64_t sinks_end(std::int64_t b, std::int64_t i) const {
    return sink_keys_ == 0 ? 0 : std::min({sink_keys_, window_.keys_of(i).end, key_length(b)});
  }

  // Keys every row of [i0, i1) sees under window and padding (may be empty): where tiles can
  // be full, so the driver tiles it apart from the edges.
  KeyRange common(std::int64_t b, std::int64_t i0, std::int64_t i1) const {
    return {window_.keys_of(i1 - 1).begin, std::min(window_.keys_of(i0).end, key_length(b))};
  }

  // Keys [j0, j1) against rows [i0, i1) of batch b: skipped when no row sees any of them,
  // full when every row sees all of them (no element mask), partial otherwise. Rows either
  // form one whole query block or lie inside one (a slice of it).
  TileKind classify(std::int64_t b, std::int64_t i0, std::int64_t i1, std::int64_t j0,
                    std::int64_t j1) const;

  // Sets the scores of hidden pairs to -inf: rows [i0, i0 + rows), keys [j0, j0 + width),
  // s[r * lds + c] holding the score of (i0 + r, j0 + c). Keys past Nk are hidden.
  void mask_tile(std::int64_t b, std::int64_t i0, std::int64_t rows, std::int64_t j0,
                 std::int64_t width, float* s, std::int64_t lds) const;

  // Whether each query row sees one interval of the keys from j0 on (window and padding alone:
  // no mask or layout, no sink key among them): then row_bounds() says all that mask_tile()
  // would.
  bool rows_see_intervals(std::int64_t j0) const { return mask_.empty() && layout_.empty() && j0 >= sink_keys_; }

  // For rows [i0, i0 + rows) of batch b, the keys each sees among [j0, j0 + width), counted
  // from j0: bounds[2r] ≤ c < bounds[2r + 1]. Rows must see intervals.
  void row_bounds(std::int64_t b, std::int64_t i0, std::int64_t rows, std::int64_t j0, std::int64_t width,
                  std::int32_t* bounds) const;

  // Σ over batches and query rows of the visible keys (one head).
  std::int64_t visible_pairs() const;

  std::int64_t scratch_bytes() const;

  // Whether key_ranges() differs between batches (per-batch key lengths).
  bool depends_on_batch() const { return !lengths_.empty(); }

  // Keys of batch b any rule may let a row see: those before its key length.
  std::int64_t key_length(std::int64_t b) const { return lengths_.empty() ? nk_ : lengths_[b]; }

 private:
  // The keys row i of batch b sees under window, sink keys and padding: one or two sorted,
  // disjoint ranges in parts; returns how many (an empty row: one empty range).
  int row_ranges(std::int64_t b, std::int64_t i, KeyRange parts[2]) const;
  TileKind classify_sinks(std::int64_t b, std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1) const;
  // Hides the keys of part (tile columns) that the mask or the block layout hides from row i.
  void hide_by_rules(std::int64_t i, std::int64_t j0, KeyRange part, float* row) const;
  // The keys [j0, j0 + width) row i of batch b sees under window and padding, counted from
  // j0 (begin <= end).
  KeyRange interval_in(std::int64_t b, std::int64_t i, std::int64_t j0, std::int64_t width) const {
    const KeyRange keys = window_.keys_of(i);
    const std::int64_t lo = std::clamp(keys.begin - j0, std::int64_t{0}, width);
    return {lo, std::clamp(std::min(keys.end, key_length(b)) - j0, lo, width)};
  }
  bool mask_allows(std::int64_t i, std::int64_t j) const;
  bool layout_allows(std::int64_t i, std::int64_t j) const;
  std::int64_t visible_in_row(std::int64_t b, std::int64_t i) const;
  // Panels of keys with at least one visible mask entry for the rows of query block qb.
  void mask_ranges(std::int64_t qb, std::vector<KeyRange>& out) const;
  void layout_ranges(std::int64_t i0, std::int64_t i1, std::vector<KeyRange>& out) const;
  TileKind classify_mask(std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1) const;
  TileKind classify_layout(std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1) const;

  std::int64_t batch_, nq_, nk_, block_rows_, panel_width_, panels_, sink_keys_;
  WindowPlan window_;
  std::vector<std::int64_t> lengths_;  // empty: every key of every batch

  TensorView<const std::uint8_t, 2> mask_;
  std::vector<std::int32_t> mask_counts_;  // [query block][panel]: visible mask entries

  std::int64_t block_q_ = 0, block_k_ = 0;
  std::vector<std::vector<std::int64_t>> layout_;  // per query block of the layout: sorted key blocks
};

}  // namespace longattn::engine
