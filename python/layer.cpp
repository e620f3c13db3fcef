// MultiHeadSelfAttention from Python: weights as PyTorch stores them (copied by the layer),
// forward on [B, N, E] float32 arrays read and written where they lie.
#include <nanobind/stl/string.h>

#include <map>
#include <span>
#include <string>

#include "python/options.hpp"

using namespace nanobind::literals;

namespace longattn::python {
namespace {

// The float32 arrays of a weights dict, each checked for its rank.
class WeightArrays {
 public:
  explicit WeightArrays(const nb::dict& weights) {
    for (const auto& [key, value] : weights) {
      const std::string name = nb::cast<std::string>(key);
      const Input array = nb::cast<Input>(value);
      if (!is(array, nb::dlpack::dtype_code::Float, 32)) {
        throw nb::type_error(("weights[\"" + name + "\"]: expected float32").c_str());
      }
      arrays_.emplace(name, array);
    }
  }

  TensorView<const float, 2> matrix(const std::string& name) const {
    const auto found = arrays_.find(name);
    return found == arrays_.end() ? TensorView<const float, 2>{} : view_of<const float, 2>(found->second, name.c_str());
  }

  std::span<const float> vector(const std::string& name) const {
    const auto found = arrays_.find(name);
    if (found == arrays_.end()) return {};
    const Input& a = found->second;
    if (a.ndim() != 1 || (a.shape(0) > 1 && a.stride(0) != 1)) {
      throw nb::value_error(("weights[\"" + name + "\"]: expected a contiguous 1-d array").c_str());
    }
    return {static_cast<const float*>(a.data()), a.shape(0)};
  }

  MultiHeadWeights weights() const {
    return MultiHeadWeights{
        .wq = matrix("wq"), .wk = matrix("wk"), .wv = matrix("wv"), .in_proj_weight = matrix("in_proj_weight"),
        .wo = matrix("wo"), .bq = vector("bq"), .bk = vector("bk"), .bv = vector("bv"),
        .in_proj_bias = vector("in_proj_bias"), .bo = vector("bo"), .position_table = matrix("position_table")};
  }

 private:
  std::map<std::string, Input> arrays_;
};

AbsolutePositions parse_positions(const std::string& name) {
  if (name == "none") return AbsolutePositions::none;
  if (name == "sinusoidal") return AbsolutePositions::sinusoidal;
  if (name == "learned") return AbsolutePositions::learned;
  throw Error("positions: expected none, sinusoidal or learned, got " + name);
}

void forward(const MultiHeadSelfAttention& layer, const Input& x, const Array& y) {
  if (!is(x, nb::dlpack::dtype_code::Float, 32)) throw nb::type_error("x: expected float32");
  if (!is(y, nb::dlpack::dtype_code::Float, 32)) throw nb::type_error("out: expected float32");
  const TensorView<const float, 3> input = view_of<const float, 3>(x, "x");
  const TensorView<float, 3> output = view_of<float, 3>(y, "out");
  const nb::gil_scoped_release released;
  layer.forward(input, output);
}

}  // namespace

void bind_layer(nb::module_& m) {
  nb::class_<MultiHeadSelfAttention>(m, "MultiHeadSelfAttention")
      .def("__init__",
           [](MultiHeadSelfAttention* self, std::int64_t embed_dim, std::int64_t heads, std::int64_t kv_heads,
              std::int64_t head_dim, const std::string& positions, const Options& options, const nb::dict& weights,
              const std::string& precision) {
             if (precision != "fp32" && precision != "bf16") {
               throw Error("precision: expected fp32 or bf16, got " + precision);
             }
             const MultiHeadConfig config{.embed_dim = embed_dim, .heads = heads, .kv_heads = kv_heads,
                                          .head_dim = head_dim, .positions = parse_positions(positions),
                                          .attention = options.build(),
                                          .precision = precision == "bf16" ? DType::bf16 : DType::f32};
             new (self) MultiHeadSelfAttention(config, WeightArrays(weights).weights());
           },
           "embed_dim"_a, "heads"_a, "kv_heads"_a, "head_dim"_a, "positions"_a, "options"_a, "weights"_a,
           "precision"_a)
      .def("forward", &forward, "x"_a, "out"_a, "out [B, N, E] = the layer applied to x [B, N, E] (GIL released).");
}

}  // namespace longattn::python
