// `longattn run --ring` under mpirun: every rank reads only its own rows of q, k and v from
// the files, computes them by ring attention, and rank 0 gathers the rows to write the files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longattn/attention.hpp"

namespace longattn::tools {

struct RingFiles {
  std::string q, k, v;               // float32 .npy, [B, H, N, D] (bhnd) or [B, N, H, D] (bnhd)
  std::string layout = "bhnd";
  std::string balance = "zigzag";    // contiguous or zigzag
  bool bf16 = false;                 // rows rounded to bf16 before attention
  bool with_lse = false;
};

struct RingRun {
  std::int64_t batch = 0, q_heads = 0, n = 0, dv = 0;
  std::vector<float> out, lse;  // the whole out in the files' layout and lse [B, Hq, N], on the writing rank
  bool writer = false;          // this rank writes the outputs (rank 0)
  AttentionStats stats;         // this rank's work
};

// MPI for the process's lifetime, started here unless the application did (builds with MPI).
void ensure_mpi();

// Self-attention of the files' q, k, v (N queries and N keys) across the ranks of
// MPI_COMM_WORLD. Initializes MPI if no one has. Throws Error in a build without MPI.
RingRun run_on_ring(const RingFiles& files, const AttentionOptions& options);

}  // namespace longattn::tools
