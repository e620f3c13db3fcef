// The one run-time dispatch point: which target's kernels a call uses.
#include <cpuid.h>

#include <cstdlib>
#include <cstring>
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

bool cpu_has_avx512_bf16() {
  // CPUID leaf 7, sub-leaf 1: EAX bit 5 (xsimd 8 does not report it).
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return cpu_supports(Isa::avx512) && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0 && (eax >> 5 & 1u) != 0;
  }();
  return has;
}

bool cpu_has_avx512_vnni() {
  // CPUID leaf 7, sub-leaf 0: ECX bit 11.
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return cpu_supports(Isa::avx512) && __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) != 0 && (ecx >> 11 & 1u) != 0;
  }();
  return has;
}

namespace {

bool amd_cores() {
  unsigned max_leaf = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &max_leaf, &ebx, &ecx, &edx) == 0) return false;
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  return std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0;
}

// The AVX2 kernels with their register blocks unrolled in full keep the 12 accumulators in
// registers across the depth loop: faster on AMD cores, slower on Intel's, so the vendor
// decides (bench/TUNING.md "Register blocks unrolled").
const KernelTable& avx2_kernels_for_this_cpu() {
  static const bool amd = amd_cores();
  return amd ? avx2_unrolled_kernels() : avx2_kernels();
}

const KernelTable& table_of(Isa isa) {
  switch (isa) {
    case Isa::avx512: return avx512_kernels();
    case Isa::avx2: return avx2_kernels_for_this_cpu();
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
