// The names of the option enums, as the command line and error messages spell them.
#include <string>
#include <utility>

#include "longattn/error.hpp"
#include "longattn/options.hpp"
#include "longattn/positional.hpp"

namespace longattn {
namespace {

template <class E>
using Names = std::pair<E, const char*>;

constexpr Names<Isa> kIsaNames[] = {
    {Isa::automatic, "auto"}, {Isa::avx512, "avx512"}, {Isa::avx2, "avx2"}, {Isa::scalar, "scalar"}};
constexpr Names<Bf16Products> kBf16ProductsNames[] = {{Bf16Products::native, "native"},
                                                       {Bf16Products::widened, "widened"}};
constexpr Names<QkPrecision> kQkPrecisionNames[] = {{QkPrecision::inputs, "inputs"}, {QkPrecision::int8, "int8"}};
constexpr Names<Normalizer> kNormalizerNames[] = {{Normalizer::softmax, "softmax"},
                                                  {Normalizer::sigmoid, "sigmoid"},
                                                  {Normalizer::relu, "relu"},
                                                  {Normalizer::linear, "linear"}};
constexpr Names<RopePairing> kRopePairingNames[] = {
    {RopePairing::none, "none"}, {RopePairing::half, "half"}, {RopePairing::interleaved, "interleaved"}};

template <class E, std::size_t N>
std::string name_of(const Names<E> (&names)[N], E value) {
  for (const auto& [e, name] : names) {
    if (e == value) return name;
  }
  return "unknown";
}

// The value called `name`; otherwise Error "<what>: expected a, b or c, got "<name>"".
template <class E, std::size_t N>
E value_named(const Names<E> (&names)[N], const std::string& name, const char* what) {
  std::string expected;
  for (std::size_t i = 0; i < N; ++i) {
    if (name == names[i].second) return names[i].first;
    expected += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(names[i].second);
  }
  throw Error(std::string(what) + ": expected " + expected + ", got \"" + name + "\"");
}

}  // namespace

std::string to_string(Isa isa) { return name_of(kIsaNames, isa); }
Isa parse_isa(const std::string& name) { return value_named(kIsaNames, name, "isa"); }

std::string to_string(Bf16Products products) { return name_of(kBf16ProductsNames, products); }
Bf16Products parse_bf16_products(const std::string& name) {
  return value_named(kBf16ProductsNames, name, "bf16_products");
}

std::string to_string(QkPrecision precision) { return name_of(kQkPrecisionNames, precision); }
QkPrecision parse_qk_precision(const std::string& name) {
  return value_named(kQkPrecisionNames, name, "qk_precision");
}

std::string to_string(Normalizer normalizer) { return name_of(kNormalizerNames, normalizer); }
Normalizer parse_normalizer(const std::string& name) { return value_named(kNormalizerNames, name, "normalizer"); }

std::string to_string(RopePairing pairing) { return name_of(kRopePairingNames, pairing); }
RopePairing parse_rope_pairing(const std::string& name) { return value_named(kRopePairingNames, name, "rope"); }

}  // namespace longattn
