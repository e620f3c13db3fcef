// Denormal floats cost a microcode assist per operation on x86 cores. Attention makes them:
// with ALiBi, far keys get probabilities near 2^-126 whose products with values underflow
// (bench/TUNING.md "Denormals flushed"). Their contribution (< 1e-38 against a softmax sum of
// at least 1) is far below fp32 resolution, as is that of denormal inputs.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace longattn::simd {

// While alive, the calling thread flushes denormal results to zero and reads denormal inputs
// as zero (MXCSR FTZ and DAZ); the thread's previous mode is restored on exit, so worker
// threads shared with the application keep its settings between our tasks.
class DenormalsFlushed {
 public:
#if defined(__x86_64__) || defined(__i386__)
  DenormalsFlushed() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~DenormalsFlushed() { _mm_setcsr(saved_); }
#endif
  DenormalsFlushed(const DenormalsFlushed&) = delete;
  DenormalsFlushed& operator=(const DenormalsFlushed&) = delete;

 private:
#if defined(__x86_64__) || defined(__i386__)
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

}  // namespace longattn::simd
