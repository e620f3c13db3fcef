// The Python module `longattn._longattn`: attention() and AttentionPlan on any array that
// speaks DLPack (NumPy, PyTorch), read and written where they lie; python/longattn wraps it.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "python/options.hpp"

using namespace nanobind::literals;

namespace longattn::python {
namespace {

// call(q, k, v, out, lse) on views of the element types q, k and v hold (fp32; bf16; fp32 q
// with bf16 k and v), once every array's type is checked, with the GIL released.
template <class Call>
longattn::AttentionStats on_typed_views(const Input& q, const Input& k, const Input& v, const Array& out,
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

longattn::AttentionStats run_attention(const Input& q, const Input& k, const Input& v, const Array& out,
                                      const std::optional<Array>& lse, const Options& options, bool bf16_bits) {
  const longattn::AttentionOptions o = options.build();
  return on_typed_views(q, k, v, out, lse, bf16_bits, [&](const auto& qv, const auto& kv, const auto& vv,
                                                          const auto& ov, const auto& lv) {
    return longattn::attention(qv, kv, vv, ov, o, lv);
  });
}

// Seconds of each of `repeats` back-to-back runs of the plan on fp32 views, timed in C++.
std::vector<double> run_seconds(const AttentionPlan& plan, const Input& q, const Input& k, const Input& v,
                                const Array& out, int repeats) {
  const auto qv = view_of<const float, 4>(q, "q"), kv = view_of<const float, 4>(k, "k"),
             vv = view_of<const float, 4>(v, "v");
  const auto ov = view_of<float, 4>(out, "out");
  std::vector<double> seconds;
  const nb::gil_scoped_release released;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    plan.run(qv, kv, vv, ov);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return seconds;
}

}  // namespace
}  // namespace longattn::python

NB_MODULE(_longattn, m) {
  using namespace longattn::python;
  m.doc() = "longattn's engine: exact attention on CPUs (use the longattn package's functions)";
  nb::exception<longattn::Error>(m, "Error", PyExc_ValueError);

  bind_options(m);

  nb::class_<longattn::AttentionStats>(m, "AttentionStats")
      .def_ro("flops", &longattn::AttentionStats::flops)
      .def_ro("visible_pairs", &longattn::AttentionStats::visible_pairs)
      .def_ro("scratch_bytes", &longattn::AttentionStats::scratch_bytes)
      .def_prop_ro("isa", [](const longattn::AttentionStats& s) { return longattn::to_string(s.isa); })
      .def_ro("bf16_products", &longattn::AttentionStats::bf16_products)
      .def_ro("qk_int8", &longattn::AttentionStats::qk_int8);

  m.attr("__version__") = LONGATTN_VERSION_STRING;
  m.def("isa", [] { return longattn::to_string(longattn::resolve_isa()); },
        "The SIMD path attention runs on this CPU (LONGATTN_ISA included).");
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
          [](const longattn::AttentionPlan& plan, const Input& q, const Input& k, const Input& v, const Array& out,
             const std::optional<Array>& lse, bool bf16_bits) {
            return on_typed_views(q, k, v, out, lse, bf16_bits, [&](const auto& qv, const auto& kv, const auto& vv,
                                                                    const auto& ov, const auto& lv) {
              return plan.run(qv, kv, vv, ov, lv);
            });
          },
          "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a.none(), "bf16_bits"_a)
      .def("_run_seconds", &run_seconds, "q"_a, "k"_a, "v"_a, "out"_a, "repeats"_a,
           "Seconds of each of `repeats` fp32 runs timed in C++: what a call costs without Python "
           "(bench/python_overhead.py).");

  bind_layer(m);
  bind_kv_cache(m);
}
