// Non-owning strided views over row-major tensors.
//
// A view's dimensions are always in the logical order the API names ([B, H, N, D] for
// attention); its strides say where each index lives in memory, so both common layouts are
// read without copies: BHND (PyTorch SDPA) and BNHD (packed projections, llama.cpp).
#pragma once

#include <array>
#include <cstdint>

namespace longattn {

template <class T, int Rank>
struct TensorView {
  T* data = nullptr;
  std::array<std::int64_t, Rank> shape{};
  std::array<std::int64_t, Rank> strides{};  // in elements, not bytes

  std::int64_t size() const {
    std::int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
  bool empty() const { return data == nullptr; }
};

// Indices [first, first + count) of dimension `dim`, as a view of their own (an empty view
// stays empty): the rows of one sequence or one rank, say (PyTorch's Tensor.narrow).
template <class T, int Rank>
TensorView<T, Rank> narrow(TensorView<T, Rank> view, int dim, std::int64_t first, std::int64_t count) {
  if (view.empty()) return view;
  view.data += first * view.strides[dim];
  view.shape[dim] = count;
  return view;
}

// [batch, heads, tokens, features] in the logical order, whatever the memory layout.
template <class T>
using HeadsView = TensorView<T, 4>;

// Contiguous [B, H, N, D] memory.
template <class T>
HeadsView<T> bhnd(T* data, std::int64_t B, std::int64_t H, std::int64_t N, std::int64_t D) {
  return {data, {B, H, N, D}, {H * N * D, N * D, D, 1}};
}

// Contiguous [B, N, H, D] memory, viewed as [B, H, N, D].
template <class T>
HeadsView<T> bnhd(T* data, std::int64_t B, std::int64_t N, std::int64_t H, std::int64_t D) {
  return {data, {B, H, N, D}, {N * H * D, D, H * D, 1}};
}

// Contiguous [B, H, N] memory: the log-sum-exp of every query row.
template <class T>
TensorView<T, 3> bhn(T* data, std::int64_t B, std::int64_t H, std::int64_t N) {
  return {data, {B, H, N}, {H * N, N, 1}};
}

}  // namespace longattn
