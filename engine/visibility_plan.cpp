#include "engine/visibility_plan.hpp"

#include <algorithm>
#include <limits>

namespace longattn::engine {
namespace {

constexpr float kHidden = -std::numeric_limits<float>::infinity();

// a ∩ b for sorted lists of disjoint ranges.
std::vector<KeyRange> intersect(const std::vector<KeyRange>& a, const std::vector<KeyRange>& b) {
  std::vector<KeyRange> out;
  std::size_t x = 0, y = 0;
  while (x < a.size() && y < b.size()) {
    const KeyRange r{std::max(a[x].begin, b[y].begin), std::min(a[x].end, b[y].end)};
    if (!r.empty()) out.push_back(r);
    (a[x].end < b[y].end) ? ++x : ++y;
  }
  return out;
}

// Appends [begin, end) to a sorted list, merging with the last range when they touch.
void append(std::vector<KeyRange>& list, std::int64_t begin, std::int64_t end) {
  if (end <= begin) return;
  if (!list.empty() && begin <= list.back().end) {
    list.back().end = std::max(list.back().end, end);
  } else {
    list.push_back({begin, end});
  }
}

}  // namespace

VisibilityPlan::VisibilityPlan(const AttentionShape& shape, const AttentionOptions& options,
                               std::int64_t block_rows, std::int64_t panel_width)
    : batch_(shape.batch), nq_(shape.nq), nk_(shape.nk), block_rows_(block_rows),
      panel_width_(panel_width), panels_((shape.nk + panel_width - 1) / panel_width),
      sink_keys_(std::min(options.sink_keys, shape.nk)),
      window_(shape.nq, shape.nk, options.window, options.positions.query_offset(shape.nq, shape.nk)),
      lengths_(options.key_lengths.begin(), options.key_lengths.end()), mask_(options.mask) {
  if (!mask_.empty()) {
    // Occupancy of every (query block, key panel) cell, so empty cells are never visited
    // and full ones run unmasked.
    const std::int64_t q_blocks = (nq_ + block_rows_ - 1) / block_rows_;
    mask_counts_.assign(static_cast<std::size_t>(q_blocks * panels_), 0);
    for (std::int64_t i = 0; i < nq_; ++i) {
      std::int32_t* counts = mask_counts_.data() + (i / block_rows_) * panels_;
      const std::uint8_t* row = mask_.data + i * mask_.strides[0];
      for (std::int64_t j = 0; j < nk_; ++j) counts[j / panel_width_] += row[j * mask_.strides[1]] != 0;
    }
  }
  const BlockSparseLayout& layout = options.block_sparse;
  if (layout.enabled()) {
    block_q_ = layout.block_q;
    block_k_ = layout.block_k;
    layout_.resize(static_cast<std::size_t>((nq_ + block_q_ - 1) / block_q_));
    for (const auto& [qb, kb] : layout.visible) layout_[qb].push_back(kb);
    for (auto& blocks : layout_) {
      std::sort(blocks.begin(), blocks.end());
      blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
    }
  }
}

bool VisibilityPlan::mask_allows(std::int64_t i, std::int64_t j) const {
  return mask_.empty() || mask_.data[i * mask_.strides[0] + j * mask_.strides[1]] != 0;
}

bool VisibilityPlan::layout_allows(std::int64_t i, std::int64_t j) const {
  if (layout_.empty()) return true;
  const auto& blocks = layout_[i / block_q_];
  return std::binary_search(blocks.begin(), blocks.end(), j / block_k_);
}

void VisibilityPlan::mask_ranges(std::int64_t qb, std::vector<KeyRange>& out) const {
  const std::int32_t* counts = mask_counts_.data() + qb * panels_;
  for (std::int64_t p = 0; p < panels_; ++p) {
    if (counts[p] > 0) append(out, p * panel_width_, std::min(nk_, (p + 1) * panel_width_));
  }
}

void VisibilityPlan::layout_ranges(std::int64_t i0, std::int64_t i1,
                                   std::vector<KeyRange>& out) const {
  std::vector<std::int64_t> blocks;
  for (std::int64_t qb = i0 / block_q_; qb <= (i1 - 1) / block_q_; ++qb) {
    blocks.insert(blocks.end(), layout_[qb].begin(), layout_[qb].end());
  }
  std::sort(blocks.begin(), blocks.end());
  for (std::int64_t kb : blocks) append(out, kb * block_k_, std::min(nk_, (kb + 1) * block_k_));
}

void VisibilityPlan::key_ranges(std::int64_t b, std::int64_t i0, std::int64_t i1,
                                std::vector<KeyRange>& out) const {
  out.clear();
  std::vector<KeyRange> ranges;
  append(ranges, 0, sinks_end(b, i1 - 1));  // the sink keys, apart from a far window
  const KeyRange seen = window_hull(b, i0, i1);
  append(ranges, seen.begin, seen.end);
  if (mask_.empty() && layout_.empty()) {  // a window and padding (and sink keys): a range or two
    for (const KeyRange& r : ranges) append(out, r.begin / panel_width_ * panel_width_, r.end);
    return;
  }
  if (!mask_.empty()) {
    std::vector<KeyRange> by_mask;
    mask_ranges(i0 / block_rows_, by_mask);
    ranges = intersect(ranges, by_mask);
  }
  if (!layout_.empty()) {
    std::vector<KeyRange> by_layout;
    layout_ranges(i0, i1, by_layout);
    ranges = intersect(ranges, by_layout);
  }
  // Tiles start on panel boundaries: the packed keys are read a panel at a time.
  for (const KeyRange& r : ranges) append(out, r.begin / panel_width_ * panel_width_, r.end);
}

// The kinds of independent rules combine: any skipped → skipped, all full → full.
static TileKind combine(TileKind a, TileKind b) {
  if (a == TileKind::skipped || b == TileKind::skipped) return TileKind::skipped;
  return a == TileKind::full && b == TileKind::full ? TileKind::full : TileKind::partial;
}

TileKind VisibilityPlan::classify(std::int64_t b, std::int64_t i0, std::int64_t i1,
                                  std::int64_t j0, std::int64_t j1) const {
  const std::int64_t length = key_length(b);
  TileKind kind = j0 >= length ? TileKind::skipped
                  : j1 > length ? TileKind::partial  // padding, or keys past Nk
                                : TileKind::full;
  TileKind seen = window_.classify(i0, i1, j0, j1);
  if (sink_keys_ > 0 && seen != TileKind::full) {  // sink keys are seen beside the window
    const TileKind sinks = classify_sinks(b, i0, i1, j0, j1);
    seen = sinks == TileKind::full ? sinks : sinks == TileKind::skipped ? seen : TileKind::partial;
  }
  kind = combine(kind, seen);
  if (kind != TileKind::skipped && !mask_.empty()) kind = combine(kind, classify_mask(i0, i1, j0, j1));
  if (kind != TileKind::skipped && !layout_.empty()) kind = combine(kind, classify_layout(i0, i1, j0, j1));
  return kind;
}

TileKind VisibilityPlan::classify_sinks(std::int64_t b, std::int64_t i0, std::int64_t i1, std::int64_t j0,
                                        std::int64_t j1) const {
  if (j0 >= sinks_end(b, i1 - 1)) return TileKind::skipped;
  return j1 <= sinks_end(b, i0) ? TileKind::full : TileKind::partial;
}

int VisibilityPlan::row_ranges(std::int64_t b, std::int64_t i, KeyRange parts[2]) const {
  KeyRange keys = window_.keys_of(i);
  keys.end = std::min(keys.end, key_length(b));
  const std::int64_t sinks = sinks_end(b, i);
  if (sinks > 0 && sinks < keys.begin) {
    parts[0] = {0, sinks};
    parts[1] = keys;
    return 2;
  }
  parts[0] = sinks > 0 ? KeyRange{0, std::max(keys.end, sinks)} : keys;
  return 1;
}

TileKind VisibilityPlan::classify_mask(std::int64_t i0, std::int64_t i1, std::int64_t j0,
                                       std::int64_t j1) const {
  // Occupancy is counted per whole query block: a slice of one can only learn "nothing here".
  const std::int64_t qb = i0 / block_rows_;
  const bool whole_block = i0 % block_rows_ == 0 && i1 == std::min(nq_, i0 + block_rows_);
  const std::int32_t* counts = mask_counts_.data() + qb * panels_;
  bool empty = true, full = whole_block;
  for (std::int64_t p = j0 / panel_width_; p * panel_width_ < std::min(j1, nk_); ++p) {
    const std::int64_t keys = std::min(nk_, (p + 1) * panel_width_) - p * panel_width_;
    empty = empty && counts[p] == 0;
    full = full && counts[p] == (i1 - i0) * keys;
  }
  return empty ? TileKind::skipped : full ? TileKind::full : TileKind::partial;
}

TileKind VisibilityPlan::classify_layout(std::int64_t i0, std::int64_t i1, std::int64_t j0,
                                         std::int64_t j1) const {
  const std::int64_t kb0 = j0 / block_k_, kb1 = (std::min(j1, nk_) - 1) / block_k_;
  bool empty = true, full = true;
  for (std::int64_t qb = i0 / block_q_; qb <= (i1 - 1) / block_q_; ++qb) {
    const auto& blocks = layout_[qb];
    const auto first = std::lower_bound(blocks.begin(), blocks.end(), kb0);
    const auto last = std::upper_bound(first, blocks.end(), kb1);
    empty = empty && first == last;
    full = full && last - first == kb1 - kb0 + 1;
  }
  return empty ? TileKind::skipped : full ? TileKind::full : TileKind::partial;
}

void VisibilityPlan::mask_tile(std::int64_t b, std::int64_t i0, std::int64_t rows,
                               std::int64_t j0, std::int64_t width, float* s,
                               std::int64_t lds) const {
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t i = i0 + r;
    float* row = s + r * lds;
    KeyRange parts[2];
    const int count = row_ranges(b, i, parts);
    std::int64_t shown = 0;  // columns before `shown` are settled
    for (int p = 0; p < count; ++p) {
      const std::int64_t lo = std::clamp(parts[p].begin - j0, shown, width);
      const std::int64_t hi = std::clamp(parts[p].end - j0, lo, width);
      std::fill(row + shown, row + lo, kHidden);
      hide_by_rules(i, j0, {lo, hi}, row);
      shown = hi;
    }
    std::fill(row + shown, row + width, kHidden);
  }
}

void VisibilityPlan::hide_by_rules(std::int64_t i, std::int64_t j0, KeyRange part, float* row) const {
  const auto [lo, hi] = part;
  if (!layout_.empty()) {
    // Hide the gaps between the row's visible key blocks, a block at a time.
    std::int64_t shown = lo;  // keys before `shown` are settled
    const auto& blocks = layout_[i / block_q_];
    for (auto it = std::lower_bound(blocks.begin(), blocks.end(), (j0 + lo) / block_k_);
         it != blocks.end() && *it * block_k_ < j0 + hi; ++it) {
      const std::int64_t begin = std::clamp(*it * block_k_ - j0, shown, hi);
      std::fill(row + shown, row + begin, kHidden);
      shown = std::clamp((*it + 1) * block_k_ - j0, shown, hi);
    }
    std::fill(row + shown, row + hi, kHidden);
  }
  if (!mask_.empty()) {
    for (std::int64_t c = lo; c < hi; ++c) {
      if (!mask_allows(i, j0 + c)) row[c] = kHidden;
    }
  }
}

void VisibilityPlan::row_bounds(std::int64_t b, std::int64_t i0, std::int64_t rows, std::int64_t j0,
                                std::int64_t width, std::int32_t* bounds) const {
  for (std::int64_t r = 0; r < rows; ++r) {
    const KeyRange keys = interval_in(b, i0 + r, j0, width);
    bounds[2 * r] = static_cast<std::int32_t>(keys.begin);
    bounds[2 * r + 1] = static_cast<std::int32_t>(keys.end);
  }
}

std::int64_t VisibilityPlan::visible_in_row(std::int64_t b, std::int64_t i) const {
  KeyRange parts[2];
  const int count = row_ranges(b, i, parts);
  std::int64_t visible = 0;
  for (int p = 0; p < count; ++p) {
    const KeyRange keys = parts[p];
    if (mask_.empty() && layout_.empty()) {
      visible += keys.size();
    } else if (mask_.empty()) {
      // Block-sparse alone: whole key blocks at a time.
      for (std::int64_t kb : layout_[i / block_q_]) {
        visible += KeyRange{std::max(keys.begin, kb * block_k_), std::min(keys.end, (kb + 1) * block_k_)}.size();
      }
    } else {
      for (std::int64_t j = keys.begin; j < keys.end; ++j) visible += mask_allows(i, j) && layout_allows(i, j);
    }
  }
  return visible;
}

std::int64_t VisibilityPlan::visible_pairs() const {
  // Without key lengths every batch sees the same keys: count one and multiply.
  const std::int64_t counted = lengths_.empty() ? std::min<std::int64_t>(batch_, 1) : batch_;
  std::int64_t total = 0;
  for (std::int64_t b = 0; b < counted; ++b) {
    for (std::int64_t i = 0; i < nq_; ++i) total += visible_in_row(b, i);
  }
  return lengths_.empty() ? total * batch_ : total;
}

std::int64_t VisibilityPlan::scratch_bytes() const {
  std::int64_t bytes = static_cast<std::int64_t>(mask_counts_.size() * sizeof(std::int32_t));
  for (const auto& blocks : layout_) bytes += static_cast<std::int64_t>(blocks.capacity() * sizeof(std::int64_t));
  return bytes;
}

}  // namespace longattn::engine
