// `longattn bench --ring` under mpirun: ring attention across the ranks against one rank
// alone on the whole sequence, and a model of the ring on a cluster from the measured rates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longattn/options.hpp"

namespace longattn::tools {

struct RingBenchConfig {
  std::int64_t n = 32768, d = 64, heads = 8, kv_heads = 0, batch = 1;
  bool causal = false;
  std::string balance = "zigzag";
  int threads = 1;  // per rank
  int repeats = 3;
  // The cluster model: nodes to tabulate, the link's rate (Gbit/s) and cores per node.
  std::vector<int> model_nodes;
  double link_gbps = 0;
  int cores_per_node = 64;
};

// Runs the benchmark on every rank of MPI_COMM_WORLD (initializing MPI if no one has) and
// prints the result on rank 0. Throws Error in a build without MPI.
void run_ring_bench(const RingBenchConfig& config);

// The cluster model's figures for one sequence length and node count.
struct RingModelPoint {
  double seconds = 0;            // the ring's time: one step per node, each the slower of compute and transfer
  double hidden = 0;             // fraction of each transfer hidden behind the step's computation
  double bytes_per_node = 0;     // q, out, lse and three key-value blocks (own and two travelling)
};

// Inputs of the model: per-core attention rate (FLOP/s), link rate (bytes/s), cores per node.
struct RingModelInputs {
  double core_flops = 0, link_bytes = 0;
  int cores_per_node = 1;
  std::int64_t d = 64, heads = 8, kv_heads = 8, batch = 1;
  bool causal = false;
};

RingModelPoint ring_model(const RingModelInputs& in, std::int64_t n, int nodes);
// Rows per node from which each block's transfer hides behind the attention on it.
double ring_rows_to_hide(const RingModelInputs& in);

}  // namespace longattn::tools
