// The one run-time dispatch point: which target's kernels a call uses.
#include <cstdlib>
#include <string>

#include <xsimd/xsimd.hpp>

#include "longattn/error.hpp"
#include "simd/kernel_table.hpp"
#include "simd/targets.hpp"

namespace longattn::simd {

bool cpu_supports(Isa isa) {
  // xsimd reads CPUID and XGETBV, so a CPU whose OS does not save zmm state is not chosen.
  static const auto cpu = xsimd::available_architectures();
  switch (isa) {
    case Isa::avx512: return cpu.avx512bw;
    case Isa::avx2: return cpu.avx2 && cpu.fma3_avx2;
    case Isa::scalar:
    case Isa::automatic: return true;
  }
  return false;
}

namespace {

const KernelTable& table_of(Isa isa) {
  switch (isa) {
    case Isa::avx512: return avx512_kernels();
    case Isa::avx2: return avx2_kernels();
    default: return scalar_kernels();
  }
}

Isa best_supported() {
  for (Isa isa : {Isa::avx512, Isa::avx2}) {
    if (cpu_supports(isa)) return isa;
  }
  return Isa::scalar;
}

Isa from_environment() {
  const char* forced = std::getenv("LONGATTN_ISA");
  if (forced == nullptr || *forced == '\0') return Isa::automatic;
  try {
    return parse_isa(forced);
  } catch (const Error&) {
    throw Error(std::string("LONGATTN_ISA: expected avx512, avx2 or scalar, got \"") + forced +
                "\"");
  }
}

}  // namespace

const KernelTable& kernels_for(Isa requested) {
  Isa isa = requested == Isa::automatic ? from_environment() : requested;
  if (isa == Isa::automatic) isa = best_supported();
  if (!cpu_supports(isa)) {
    throw Error("isa: this CPU cannot run " + to_string(isa) + "; it runs " +
                to_string(best_supported()) + " and below");
  }
  return table_of(isa);
}

}  // namespace longattn::simd
