// The q, k, v and out arrays of `longattn run`: float32 of 4 dimensions, [B, H, N, D] in the
// bhnd layout or [B, N, H, D] in bnhd.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longattn/tensor_view.hpp"
#include "tools/npy.hpp"

namespace longattn::tools {

// "[2, 3, 4]".
std::string shape_text(const std::vector<std::int64_t>& shape);

// The elements of a q, k or v array read from `file`, checked; shape: the array's.
std::vector<float> heads_values(const npy::Array& array, const std::string& file, std::vector<std::int64_t>& shape);

// [B, H, N, D] view of an array of shape s stored in `layout`.
template <class T>
HeadsView<T> heads_view(T* data, const std::vector<std::int64_t>& s, const std::string& layout) {
  return layout == "bnhd" ? bnhd(data, s[0], s[1], s[2], s[3]) : bhnd(data, s[0], s[1], s[2], s[3]);
}

}  // namespace longattn::tools
