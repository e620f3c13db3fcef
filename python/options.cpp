#include "python/options.hpp"

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <array>
#include <utility>

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

}  // namespace

AttentionOptions Options::build() const {
  AttentionOptions o;
  o.window = {window_left, window_right};
  o.scale = scale;
  o.sigmoid_bias = sigmoid_bias;
  o.normalizer = parse_normalizer(normalizer);
  o.isa = parse_isa(isa);
  o.bf16_products = parse_bf16_products(bf16_products);
  o.threads = threads;
  o.alibi = alibi;
  o.positions = {query_start, key_start};
  if (rope != "none") o.rope = {parse_rope_pairing(rope), rope_base};
  if (key_lengths) o.key_lengths = {int64_rows(*key_lengths, 1, "key_lengths"), key_lengths->shape(0)};
  if (mask) {
    if (!is(*mask, nb::dlpack::dtype_code::Bool, 8) && !is(*mask, nb::dlpack::dtype_code::UInt, 8)) {
      throw nb::type_error("mask: expected a bool or uint8 array [Nq, Nk]");
    }
    o.mask = view_of<const std::uint8_t, 2>(*mask, "mask");
  }
  if (relative_bias) {
    if (!is(*relative_bias, nb::dlpack::dtype_code::Float, 32)) throw nb::type_error("relative_bias: expected float32");
    o.relative_bias = view_of<const float, 2>(*relative_bias, "relative_bias");
  }
  if (score_bias) {
    if (!is(*score_bias, nb::dlpack::dtype_code::Float, 32)) throw nb::type_error("score_bias: expected float32");
    o.score_bias = view_of<const float, 4>(*score_bias, "score_bias");
  }
  if (additive_w) {
    for (const auto& [array, name] : {std::pair{&additive_wq, "additive wq"}, {&additive_wk, "additive wk"},
                                      {&additive_w, "additive w"}}) {
      if (!*array || !is(**array, nb::dlpack::dtype_code::Float, 32)) {
        throw nb::type_error((std::string(name) + ": expected a float32 array").c_str());
      }
    }
    if (additive_w->ndim() != 1 || additive_w->stride(0) != 1) {
      throw nb::type_error("additive w: expected a contiguous 1-d array");
    }
    o.additive = {view_of<const float, 2>(*additive_wq, "additive wq"),
                  view_of<const float, 2>(*additive_wk, "additive wk"),
                  {static_cast<const float*>(additive_w->data()), additive_w->shape(0)}};
  }
  o.softcap = softcap;
  o.sink_keys = sink_keys;
  if (sinks) {
    if (!is(*sinks, nb::dlpack::dtype_code::Float, 32) || sinks->ndim() != 1 || (sinks->shape(0) > 1 && sinks->stride(0) != 1)) {
      throw nb::type_error("sinks: expected a contiguous 1-d float32 array [Hq]");
    }
    o.sinks = {static_cast<const float*>(sinks->data()), sinks->shape(0)};
  }
  if (cu_seqlens_q) o.cu_seqlens_q = {int64_rows(*cu_seqlens_q, 1, "cu_seqlens_q"), cu_seqlens_q->shape(0)};
  if (cu_seqlens_k) o.cu_seqlens_k = {int64_rows(*cu_seqlens_k, 1, "cu_seqlens_k"), cu_seqlens_k->shape(0)};
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
      .def_rw("threads", &Options::threads)
      .def_rw("query_start", &Options::query_start, nb::arg().none())
      .def_rw("key_start", &Options::key_start);
}

}  // namespace longattn::python
