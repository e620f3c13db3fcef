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

}  // namespace longattn
