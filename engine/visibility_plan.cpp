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
      window_(shape.nq, shape.nk, options.window),
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
  KeyRange seen = window_.keys_of_rows(i0, i1);
  seen.end = std::min(seen.end, key_length(b));
  if (seen.empty()) return;
  std::vector<KeyRange> ranges{seen};
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

bool VisibilityPlan::all_visible(std::int64_t b, std::int64_t i0, std::int64_t i1,
                                 std::int64_t j0, std::int64_t j1) const {
  if (j1 > key_length(b) || window_.classify(i0, i1, j0, j1) != TileKind::full) return false;
  if (!mask_.empty()) {  // j0 is panel-aligned and j1 <= Nk here
    const std::int32_t* counts = mask_counts_.data() + (i0 / block_rows_) * panels_;
    const std::int64_t rows = i1 - i0;
    for (std::int64_t p = j0 / panel_width_; p * panel_width_ < j1; ++p) {
      const std::int64_t keys = std::min(nk_, (p + 1) * panel_width_) - p * panel_width_;
      if (counts[p] != rows * keys) return false;
    }
  }
  if (!layout_.empty()) {
    for (std::int64_t qb = i0 / block_q_; qb <= (i1 - 1) / block_q_; ++qb) {
      const auto& blocks = layout_[qb];
      for (std::int64_t kb = j0 / block_k_; kb * block_k_ < j1; ++kb) {
        if (!std::binary_search(blocks.begin(), blocks.end(), kb)) return false;
      }
    }
  }
  return true;
}

void VisibilityPlan::mask_tile(std::int64_t b, std::int64_t i0, std::int64_t rows,
                               std::int64_t j0, std::int64_t width, float* s,
                               std::int64_t lds) const {
  const std::int64_t length = key_length(b);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t i = i0 + r;
    float* row = s + r * lds;
    const KeyRange keys = window_.keys_of(i);
    const std::int64_t lo = std::clamp(keys.begin - j0, std::int64_t{0}, width);
    const std::int64_t hi = std::clamp(std::min(keys.end, length) - j0, lo, width);
    std::fill(row, row + lo, kHidden);
    std::fill(row + hi, row + width, kHidden);
    if (!mask_.empty() || !layout_.empty()) {
      for (std::int64_t c = lo; c < hi; ++c) {
        if (!mask_allows(i, j0 + c) || !layout_allows(i, j0 + c)) row[c] = kHidden;
      }
    }
  }
}

std::int64_t VisibilityPlan::visible_in_row(std::int64_t b, std::int64_t i) const {
  KeyRange keys = window_.keys_of(i);
  keys.end = std::min(keys.end, key_length(b));
  if (mask_.empty() && layout_.empty()) return keys.size();
  std::int64_t count = 0;
  if (mask_.empty()) {
    // Block-sparse alone: whole key blocks at a time.
    for (std::int64_t kb : layout_[i / block_q_]) {
      count += KeyRange{std::max(keys.begin, kb * block_k_), std::min(keys.end, (kb + 1) * block_k_)}.size();
    }
    return count;
  }
  for (std::int64_t j = keys.begin; j < keys.end; ++j) count += mask_allows(i, j) && layout_allows(i, j);
  return count;
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
