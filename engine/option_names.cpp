#include <string>

#include "longattn/error.hpp"
#include "longattn/options.hpp"

namespace longattn {

std::string to_string(Isa isa) {
  switch (isa) {
    case Isa::automatic: return "auto";
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    case Isa::scalar: return "scalar";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : {Isa::automatic, Isa::avx512, Isa::avx2, Isa::scalar}) {
    if (name == to_string(isa)) return isa;
  }
  throw Error("isa: expected auto, avx512, avx2 or scalar, got \"" + name + "\"");
}

std::string to_string(Normalizer normalizer) {
  switch (normalizer) {
    case Normalizer::softmax: return "softmax";
    case Normalizer::sigmoid: return "sigmoid";
    case Normalizer::relu: return "relu";
    case Normalizer::linear: return "linear";
  }
  return "unknown";
}

Normalizer parse_normalizer(const std::string& name) {
  for (Normalizer n : {Normalizer::softmax, Normalizer::sigmoid, Normalizer::relu, Normalizer::linear}) {
    if (name == to_string(n)) return n;
  }
  throw Error("normalizer: expected softmax, sigmoid, relu or linear, got \"" + name + "\"");
}

}  // namespace longattn

namespace longattn {

std::string to_string(RopePairing pairing) {
  switch (pairing) {
    case RopePairing::none: return "none";
    case RopePairing::half: return "half";
    case RopePairing::interleaved: return "interleaved";
  }
  return "unknown";
}

RopePairing parse_rope_pairing(const std::string& name) {
  for (RopePairing p : {RopePairing::none, RopePairing::half, RopePairing::interleaved}) {
    if (name == to_string(p)) return p;
  }
  throw Error("rope: expected none, half or interleaved, got \"" + name + "\"");
}

}  // namespace longattn
