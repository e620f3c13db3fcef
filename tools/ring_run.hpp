// `longattn run --ring` under mpirun: every rank reads the whole q, k and v, computes its own
// rows by ring attention, and rank 0 gathers the rows and writes the files.
#pragma once

#include <vector>

#include "longattn/attention.hpp"

namespace longattn::tools {

struct RingRun {
  std::vector<float> out, lse;  // the whole [B, Hq, N, Dv] and [B, Hq, N], BHND, on the writing rank
  bool writer = false;          // this rank writes the outputs (rank 0)
  AttentionStats stats;         // this rank's work
};

// Self-attention of q, k, v (N queries and N keys) across the ranks of MPI_COMM_WORLD, sliced
// contiguously or in zigzag (`balance`). Initializes MPI if no one has. Throws Error in a
// build without MPI.
RingRun run_on_ring(const HeadsView<const float>& q, const HeadsView<const float>& k, const HeadsView<const float>& v,
                    const AttentionOptions& options, const std::string& balance, bool with_lse);

}  // namespace longattn::tools
