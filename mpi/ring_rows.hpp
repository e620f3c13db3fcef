// Runs of rows of a rank's [B, H, rows, D] tensors: its segments lie back to back along N.
#pragma once

#include <cstdint>

#include "longattn/tensor_view.hpp"

namespace longattn::mpi {

// Rows [first, first + count) of a [B, H, N, D] view, as a view of its own.
template <class T>
HeadsView<T> rows_of(const HeadsView<T>& view, std::int64_t first, std::int64_t count) {
  return {view.data + first * view.strides[2], {view.shape[0], view.shape[1], count, view.shape[3]}, view.strides};
}

}  // namespace longattn::mpi
