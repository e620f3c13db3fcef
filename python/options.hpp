// What the Python module shares between its bindings: arrays as DLPack hands them over, views
// of them, and the options of one call built from Python values.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <optional>
#include <string>

#include "longattn/longattn.hpp"

namespace longattn::python {

namespace nb = nanobind;

// Arrays the engine writes (out, lse), and those it only reads (read-only NumPy arrays too:
// broadcast views, memory-mapped files).
using Array = nb::ndarray<nb::device::cpu>;
using Input = nb::ndarray<nb::ro, nb::device::cpu>;

template <class A>
bool is(const A& a, nb::dlpack::dtype_code code, int bits) {
  return a.dtype().code == static_cast<std::uint8_t>(code) && a.dtype().bits == bits && a.dtype().lanes == 1;
}

// The array as a view of Rank dimensions, its strides as they are (in elements).
template <class T, int Rank, class A>
TensorView<T, Rank> view_of(const A& a, const char* name) {
  if (a.ndim() != Rank) {
    throw nb::value_error((std::string(name) + ": expected " + std::to_string(Rank) + " dimensions, got " +
                           std::to_string(a.ndim())).c_str());
  }
  TensorView<T, Rank> v{static_cast<T*>(a.data())};
  for (int i = 0; i < Rank; ++i) v.shape[i] = static_cast<std::int64_t>(a.shape(i)), v.strides[i] = a.stride(i);
  return v;
}

// The element type of q, k and v: float32, or bfloat16 (PyTorch's, or NumPy's uint16 bits
// of ml_dtypes' bfloat16 when `bf16_bits`); a TypeError naming the array otherwise.
enum class Element { f32, bf16 };

inline Element element_of(const Input& a, const char* name, bool bf16_bits) {
  if (is(a, nb::dlpack::dtype_code::Float, 32)) return Element::f32;
  if (is(a, nb::dlpack::dtype_code::Bfloat, 16) || (bf16_bits && is(a, nb::dlpack::dtype_code::UInt, 16))) {
    return Element::bf16;
  }
  throw nb::type_error((std::string(name) + ": expected float32 or bfloat16").c_str());
}

// The options of one call, with the arrays they point into held alive.
struct Options {
  std::int64_t window_left = -1, window_right = -1;
  std::optional<float> scale, sigmoid_bias;
  std::optional<Input> key_lengths, mask, relative_bias, score_bias;
  std::int64_t block_q = 0, block_k = 0;
  std::optional<Input> visible_blocks;  // int64 [count, 2]: (query block, key block)
  std::optional<Input> additive_wq, additive_wk, additive_w;  // float32 [Da, D], [Da, D], [Da]
  std::optional<float> softcap;
  std::optional<Input> sinks;                       // float32 [Hq]
  std::int64_t sink_keys = 0;
  std::optional<Input> cu_seqlens_q, cu_seqlens_k;  // int64 [S + 1]
  std::string normalizer = "softmax", rope = "none", isa = "auto", bf16_products = "native", qk_precision = "inputs";
  double rope_base = 10000;
  bool alibi = false;
  int threads = 0;
  std::optional<std::int64_t> query_start;
  std::int64_t key_start = 0;

  AttentionOptions build() const;
};

// Binds Options in module m.
void bind_options(nb::module_& m);

// Binds MultiHeadSelfAttention in module m (layer.cpp).
void bind_layer(nb::module_& m);

// Binds KvCache and its attention in module m (kv_cache.cpp).
void bind_kv_cache(nb::module_& m);

}  // namespace longattn::python
