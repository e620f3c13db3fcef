// What this machine can do: the ISA path longattn runs and its measured fp32 peak, the
// denominator of every "% of peak" longattn reports (DESIGN.md §4).
#pragma once

#include "longattn/export.hpp"
#include "longattn/options.hpp"

namespace longattn {

// The path Isa::automatic resolves to here (LONGATTN_ISA included); throws Error when a
// forced path is not runnable.
LONGATTN_API Isa resolve_isa(Isa requested = Isa::automatic);

struct PeakFlops {
  double gflops = 0;  // all threads together
  Isa isa = Isa::automatic;
  int threads = 1;
};

// Measures the fp32 FMA rate of `isa`'s vector registers on `threads` threads (each runs
// independent FMA chains for about `seconds`; the best of three rounds counts).
LONGATTN_API PeakFlops measure_fp32_peak(Isa isa = Isa::automatic, int threads = 1, double seconds = 0.2);

}  // namespace longattn
