#include "python/options.hpp"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <array>
#include <span>

namespace longattn::python {
namespace {

// A contiguous 1-d or [count, 2] int64 array, as the engine's spans read it.
const std::int64_t* int64_rows(const Input& a, std::size_t columns, const char* name) {
  const bool rows = columns == 1 ? a.ndim() == 1 && a.stride(0) == 1
                                 : a.ndim() == 2 && a.shape(1) == columns && a.stride(1) == 1 &&
                                       a.stride(0) == static_cast<std::int64_t>(columns);
  if (!is(a, nb::dlpack::dtype_code::Int, 64) || !rows) {
    throw nb::type_error((std::string(name) + (columns == 1 ? ": expected a contiguous 1-d int64 array"
                                                            : ": expected a contiguous int64 array [count, 2]"))
                             .c_str());
  }
  return static_cast<const std::int64_t*>(a.data());
}

// A float32 array as a view of Rank dimensions; an empty view when not given.
template <int Rank>
TensorView<const float, Rank> float_view(const std::optional<Input>& a, const char* name) {
  if (!a) return {};
  if (!is(*a, nb::dlpack::dtype_code::Float, 32)) throw nb::type_error((std::string(name) + ": expected float32").c_str());
  return view_of<const float, Rank>(*a, name);
}

// A contiguous 1-d float32 array as a span; empty when not given.
std::span<const float> float_span(const std::optional<Input>& a, const char* name) {
  if (!a) return {};
  if (!is(*a, nb::dlpack::dtype_code::Float, 32) || a->ndim() != 1 || (a->shape(0) > 1 && a->stride(0) != 1)) {
    throw nb::type_error((std::string(name) + ": expected a contiguous 1-d float32 array").c_str());
  }
  return {static_cast<const float*>(a->data()), a->shape(0)};
}

// A contiguous 1-d int64 array as a span; empty when not given.
std::span<const std::int64_t> int64_span(const std::optional<Input>& a, const char* name) {
  if (!a) return {};
  return {int64_rows(*a, 1, name), a->shape(0)};
}

}  // namespace

AttentionOptions Options::build() const {
  AttentionOptions o;
  o.window = {window_left, window_right};
  o.scale = scale;
  o.sigmoid_bias = sigmoid_bias;
  o.normalizer = parse_normalizer(normalizer);
  o.isa = parse_isa(isa);
  o.bf16_products = parse_bf16_products(bf16_products);
  o.qk_precision = parse_qk_precision(qk_precision);
  o.threads = threads;
  o.alibi = alibi;
  o.positions = {query_start, key_start};
  if (rope != "none") o.rope = {parse_rope_pairing(rope), rope_base};
  o.softcap = softcap;
  o.sink_keys = sink_keys;
  o.key_lengths = int64_span(key_lengths, "key_lengths");
  o.cu_seqlens_q = int64_span(cu_seqlens_q, "cu_seqlens_q");
  o.cu_seqlens_k = int64_span(cu_seqlens_k, "cu_seqlens_k");
  o.sinks = float_span(sinks, "sinks");
  o.relative_bias = float_view<2>(relative_bias, "relative_bias");
  o.score_bias = float_view<4>(score_bias, "score_bias");
  if (additive_w) {
    o.additive = {float_view<2>(additive_wq, "additive wq"), float_view<2>(additive_wk, "additive wk"),
                  float_span(additive_w, "additive w")};
  }
  if (mask) {
    if (!is(*mask, nb::dlpack::dtype_code::Bool, 8) && !is(*mask, nb::dlpack::dtype_code::UInt, 8)) {
      throw nb::type_error("mask: expected a bool or uint8 array [Nq, Nk]");
    }
    o.mask = view_of<const std::uint8_t, 2>(*mask, "mask");
  }
  if (visible_blocks) {
    const auto* pairs = reinterpret_cast<const std::array<std::int64_t, 2>*>(
        int64_rows(*visible_blocks, 2, "block_sparse"));
    o.block_sparse = {block_q, block_k, {pairs, visible_blocks->shape(0)}};
  }
  return o;
}

void bind_options(nb::module_& m) {
  nb::class_<Options>(m, "Options")
      .def(nb::init<>())
      .def_rw("window_left", &Options::window_left)
      .def_rw("window_right", &Options::window_right)
      .def_rw("scale", &Options::scale, nb::arg().none())
      .def_rw("sigmoid_bias", &Options::sigmoid_bias, nb::arg().none())
      .def_rw("key_lengths", &Options::key_lengths, nb::arg().none())
      .def_rw("mask", &Options::mask, nb::arg().none())
      .def_rw("relative_bias", &Options::relative_bias, nb::arg().none())
      .def_rw("score_bias", &Options::score_bias, nb::arg().none())
      .def_rw("block_q", &Options::block_q)
      .def_rw("block_k", &Options::block_k)
      .def_rw("visible_blocks", &Options::visible_blocks, nb::arg().none())
      .def_rw("additive_wq", &Options::additive_wq, nb::arg().none())
      .def_rw("additive_wk", &Options::additive_wk, nb::arg().none())
      .def_rw("additive_w", &Options::additive_w, nb::arg().none())
      .def_rw("softcap", &Options::softcap, nb::arg().none())
      .def_rw("sinks", &Options::sinks, nb::arg().none())
      .def_rw("sink_keys", &Options::sink_keys)
      .def_rw("cu_seqlens_q", &Options::cu_seqlens_q, nb::arg().none())
      .def_rw("cu_seqlens_k", &Options::cu_seqlens_k, nb::arg().none())
      .def_rw("normalizer", &Options::normalizer)
      .def_rw("rope", &Options::rope)
      .def_rw("rope_base", &Options::rope_base)
      .def_rw("alibi", &Options::alibi)
      .def_rw("isa", &Options::isa)
      .def_rw("bf16_products", &Options::bf16_products)
      .def_rw("qk_precision", &Options::qk_precision)
      .def_rw("threads", &Options::threads)
      .def_rw("query_start", &Options::query_start, nb::arg().none())
      .def_rw("key_start", &Options::key_start);
}

}  // namespace longattn::python
