// The Python module `longattn._longattn`: attention() and AttentionPlan on any array that
// speaks DLPack (NumPy, PyTorch), read and written where they lie; python/longattn wraps it.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <string>

#include "longattn/longattn.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using Array = nb::ndarray<nb::device::cpu>;

// The options of one call, with the arrays they point into held alive.
struct Options {
  std::int64_t window_left = -1, window_right = -1;
  std::optional<float> scale, sigmoid_bias;
  std::optional<Array> key_lengths, mask, relative_bias;
  std::string normalizer = "softmax", rope = "none", isa = "auto", bf16_products = "native";
  double rope_base = 10000;
  bool alibi = false;
  int threads = 0;
  std::optional<std::int64_t> query_start;
  std::int64_t key_start = 0;

  longattn::AttentionOptions build() const;
};

bool is(const Array& a, nb::dlpack::dtype_code code, int bits) {
  return a.dtype().code == static_cast<std::uint8_t>(code) && a.dtype().bits == bits && a.dtype().lanes == 1;
}

template <class T, int Rank>
longattn::TensorView<T, Rank> view_of(const Array& a, const char* name) {
  if (a.ndim() != Rank) {
    throw nb::value_error((std::string(name) + ": expected " + std::to_string(Rank) + " dimensions, got " +
                           std::to_string(a.ndim())).c_str());
  }
  longattn::TensorView<T, Rank> v{static_cast<T*>(a.data())};
  for (int i = 0; i < Rank; ++i) v.shape[i] = static_cast<std::int64_t>(a.shape(i)), v.strides[i] = a.stride(i);
  return v;
}

longattn::AttentionOptions Options::build() const {
  using namespace longattn;
  AttentionOptions o;
  o.window = {window_left, window_right};
  o.scale = scale;
  o.sigmoid_bias = sigmoid_bias;
  o.normalizer = parse_normalizer(normalizer);
  o.isa = parse_isa(isa);
  o.bf16_products = bf16_products == "widened" ? Bf16Products::widened : Bf16Products::native;
  o.threads = threads;
  o.alibi = alibi;
  o.positions = {query_start, key_start};
  if (rope != "none") o.rope = {parse_rope_pairing(rope), rope_base};
  if (key_lengths) {
    if (!is(*key_lengths, nb::dlpack::dtype_code::Int, 64) || key_lengths->ndim() != 1 || key_lengths->stride(0) != 1) {
      throw nb::type_error("key_lengths: expected a contiguous 1-d int64 array");
    }
    o.key_lengths = {static_cast<const std::int64_t*>(key_lengths->data()), key_lengths->shape(0)};
  }
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
  return o;
}

// The element type of q, k and v: float32, or bfloat16 (PyTorch's, or NumPy's uint16 bits
// of ml_dtypes' bfloat16 when `bf16_bits`).
enum class Element { f32, bf16 };

Element element_of(const Array& a, const char* name, bool bf16_bits) {
  if (is(a, nb::dlpack::dtype_code::Float, 32)) return Element::f32;
  if (is(a, nb::dlpack::dtype_code::Bfloat, 16) || (bf16_bits && is(a, nb::dlpack::dtype_code::UInt, 16))) {
    return Element::bf16;
  }
  throw nb::type_error((std::string(name) + ": expected float32 or bfloat16").c_str());
}

// call(q, k, v, out, lse) on views of the element types q, k and v hold (fp32; bf16; fp32 q
// with bf16 k and v), once every array's type is checked, with the GIL released.
template <class Call>
longattn::AttentionStats on_typed_views(const Array& q, const Array& k, const Array& v, const Array& out,
                                        const std::optional<Array>& lse, bool bf16_bits, Call call) {
  using namespace longattn;
  const Element qe = element_of(q, "q", bf16_bits), ke = element_of(k, "k", bf16_bits),
                ve = element_of(v, "v", bf16_bits);
  if (ke != ve) throw nb::type_error("k and v: expected the same element type");
  if (qe == Element::bf16 && ke == Element::f32) throw nb::type_error("q: bfloat16 queries need bfloat16 keys and values");
  if (!is(out, nb::dlpack::dtype_code::Float, 32)) throw nb::type_error("out: expected float32");
  if (lse && !is(*lse, nb::dlpack::dtype_code::Float, 32)) throw nb::type_error("lse: expected float32");
  const HeadsView<float> o = view_of<float, 4>(out, "out");
  const TensorView<float, 3> l = lse ? view_of<float, 3>(*lse, "lse") : TensorView<float, 3>{};
  const nb::gil_scoped_release released;
  if (ke == Element::f32) {
    return call(view_of<const float, 4>(q, "q"), view_of<const float, 4>(k, "k"), view_of<const float, 4>(v, "v"), o, l);
  }
  if (qe == Element::bf16) {
    return call(view_of<const bf16, 4>(q, "q"), view_of<const bf16, 4>(k, "k"), view_of<const bf16, 4>(v, "v"), o, l);
  }
  return call(view_of<const float, 4>(q, "q"), view_of<const bf16, 4>(k, "k"), view_of<const bf16, 4>(v, "v"), o, l);
}

longattn::AttentionStats run_attention(const Array& q, const Array& k, const Array& v, const Array& out,
                                      const std::optional<Array>& lse, const Options& options, bool bf16_bits) {
  const longattn::AttentionOptions o = options.build();
  return on_typed_views(q, k, v, out, lse, bf16_bits, [&](const auto& qv, const auto& kv, const auto& vv,
                                                          const auto& ov, const auto& lv) {
    return longattn::attention(qv, kv, vv, ov, o, lv);
  });
}

}  // namespace

NB_MODULE(_longattn, m) {
  m.doc() = "longattn's engine: exact attention on CPUs (use the longattn package's functions)";
  nb::exception<longattn::Error>(m, "Error", PyExc_ValueError);

  nb::class_<Options>(m, "Options")
      .def(nb::init<>())
      .def_rw("window_left", &Options::window_left)
      .def_rw("window_right", &Options::window_right)
      .def_rw("scale", &Options::scale, nb::arg().none())
      .def_rw("sigmoid_bias", &Options::sigmoid_bias, nb::arg().none())
      .def_rw("key_lengths", &Options::key_lengths, nb::arg().none())
      .def_rw("mask", &Options::mask, nb::arg().none())
      .def_rw("relative_bias", &Options::relative_bias, nb::arg().none())
      .def_rw("normalizer", &Options::normalizer)
      .def_rw("rope", &Options::rope)
      .def_rw("rope_base", &Options::rope_base)
      .def_rw("alibi", &Options::alibi)
      .def_rw("isa", &Options::isa)
      .def_rw("bf16_products", &Options::bf16_products)
      .def_rw("threads", &Options::threads)
      .def_rw("query_start", &Options::query_start, nb::arg().none())
      .def_rw("key_start", &Options::key_start);

  nb::class_<longattn::AttentionStats>(m, "AttentionStats")
      .def_ro("flops", &longattn::AttentionStats::flops)
      .def_ro("visible_pairs", &longattn::AttentionStats::visible_pairs)
      .def_ro("scratch_bytes", &longattn::AttentionStats::scratch_bytes)
      .def_prop_ro("isa", [](const longattn::AttentionStats& s) { return longattn::to_string(s.isa); })
      .def_ro("bf16_products", &longattn::AttentionStats::bf16_products);

  m.def("attention", &run_attention, "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a.none(), "options"_a, "bf16_bits"_a,
        "out = attention(q, k, v) into `out` (and `lse`), on [B, H, N, D] views of any strides.");

  nb::class_<longattn::AttentionPlan>(m, "AttentionPlan")
      .def("__init__",
           [](longattn::AttentionPlan* self, std::int64_t batch, std::int64_t q_heads, std::int64_t kv_heads,
              std::int64_t nq, std::int64_t nk, std::int64_t d, std::int64_t dv, bool bf16_queries, bool bf16_kv,
              const Options& options) {
             using longattn::DType;
             new (self) longattn::AttentionPlan(
                 {.batch = batch, .q_heads = q_heads, .kv_heads = kv_heads, .nq = nq, .nk = nk, .d = d, .dv = dv,
                  .q_type = bf16_queries ? DType::bf16 : DType::f32, .kv_type = bf16_kv ? DType::bf16 : DType::f32},
                 options.build());
           },
           "batch"_a, "q_heads"_a, "kv_heads"_a, "nq"_a, "nk"_a, "d"_a, "dv"_a, "bf16_queries"_a, "bf16_kv"_a,
           "options"_a)
      .def(
          "run",
          [](const longattn::AttentionPlan& plan, const Array& q, const Array& k, const Array& v, const Array& out,
             const std::optional<Array>& lse, bool bf16_bits) {
            return on_typed_views(q, k, v, out, lse, bf16_bits, [&](const auto& qv, const auto& kv, const auto& vv,
                                                                    const auto& ov, const auto& lv) {
              return plan.run(qv, kv, vv, ov, lv);
            });
          },
          "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a.none(), "bf16_bits"_a);
}
