// The scalar target: kernel_table-inl.hpp compiled with this target's flags (CMakeLists).
#define LONGATTN_SIMD_TARGET scalar
#include "simd/kernel_table-inl.hpp"
#include "simd/targets.hpp"

namespace longattn::simd {

const KernelTable& scalar_kernels() {
  // Register block: one lane; the block only shapes the loop for the compiler.
  static const KernelTable table =
      scalar::make_kernel_table<scalar::VecF32<scalar::ScalarArch>, 4, 4, 8>(Isa::scalar, "scalar");
  return table;
}

}  // namespace longattn::simd
