// libFuzzer target for the .npy reader: any byte string either parses into an array whose
// data size matches its header or throws longattn::Error; it never crashes or reads past the
// input (built with AddressSanitizer and UndefinedBehaviorSanitizer).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "longattn/error.hpp"
#include "tools/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<char> file(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size);
  try {
    const longattn::npy::Array a = longattn::npy::parse(file, "fuzz.npy");
    if (a.size() < (1 << 20)) (void)a.values<float>();
  } catch (const longattn::Error&) {
  }
  return 0;
}
