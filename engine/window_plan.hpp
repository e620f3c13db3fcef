// Which keys each query sees under a window, and what that means for a whole tile.
//
// Query i sits at position i + Nk - Nq (bottom-right alignment). Under window (left, right)
// it sees keys [lo(i), hi(i)), both ends non-decreasing in i, so a block of query rows sees
// the union [lo(first), hi(last)) and a tile is classified from its corner rows alone.
#pragma once

#include <algorithm>
#include <cstdint>

#include "longattn/options.hpp"

namespace longattn::engine {

struct KeyRange {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  bool empty() const { return end <= begin; }
  std::int64_t size() const { return empty() ? 0 : end - begin; }
};

enum class TileKind { skipped, full, partial };

class WindowPlan {
 public:
  // Query i at key position i + query_offset (Positions::query_offset).
  WindowPlan(std::int64_t nq, std::int64_t nk, Window window, std::int64_t query_offset)
      : nq_(nq), nk_(nk), offset_(query_offset), window_(window) {}
  WindowPlan(std::int64_t nq, std::int64_t nk, Window window) : WindowPlan(nq, nk, window, nk - nq) {}

  KeyRange keys_of(std::int64_t i) const {
    const std::int64_t pos = i + offset_;
    const std::int64_t lo = window_.left < 0 ? 0 : std::clamp<std::int64_t>(pos - window_.left, 0, nk_);
    const std::int64_t hi = window_.right < 0 ? nk_ : std::min(nk_, pos + window_.right + 1);
    return {lo, std::max(lo, hi)};
  }

  // Keys seen by at least one of the rows [i0, i1).
  KeyRange keys_of_rows(std::int64_t i0, std::int64_t i1) const {
    return {keys_of(i0).begin, keys_of(i1 - 1).end};
  }

  // Keys [j0, j1) against rows [i0, i1): skipped when no row sees any of them, full when every
  // row sees all of them (no element mask needed), partial otherwise.
  TileKind classify(std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1) const {
    const KeyRange first = keys_of(i0), last = keys_of(i1 - 1);
    if (last.end <= j0 || first.begin >= j1) return TileKind::skipped;
    if (last.begin <= j0 && j1 <= first.end) return TileKind::full;
    return TileKind::partial;
  }

  // Σ_i |keys_of(i)|, in closed form per row.
  std::int64_t visible_pairs() const {
    std::int64_t total = 0;
    for (std::int64_t i = 0; i < nq_; ++i) total += keys_of(i).size();
    return total;
  }

 private:
  std::int64_t nq_, nk_, offset_;
  Window window_;
};

}  // namespace longattn::engine
