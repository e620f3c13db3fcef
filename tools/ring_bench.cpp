#include "tools/ring_bench.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <vector>

#include "longattn/error.hpp"

#if defined(LONGATTN_WITH_MPI)
#include <mpi.h>

#include "bench/measure.hpp"
#include "longattn/attention.hpp"
#include "longattn/ring.hpp"
#include "tools/ring_run.hpp"
#endif

namespace longattn::tools {

namespace {

double attention_flops(const RingModelInputs& in, std::int64_t n) {
  const double full = 4.0 * double(in.batch) * double(in.heads) * double(n) * double(n) * double(in.d);
  return in.causal ? full / 2 : full;  // zigzag evens the causal half over the nodes
}

double block_bytes(const RingModelInputs& in, double rows) {
  return double(in.batch) * double(in.kv_heads) * rows * 2.0 * double(in.d) * sizeof(float);
}

}  // namespace

RingModelPoint ring_model(const RingModelInputs& in, std::int64_t n, int nodes) {
  const double rows = double(n) / nodes, node_flops = in.core_flops * in.cores_per_node;
  const double compute = attention_flops(in, n) / (double(nodes) * nodes) / node_flops;  // one block pair
  const double transfer = nodes > 1 ? block_bytes(in, rows) / in.link_bytes : 0;
  RingModelPoint point;
  point.seconds = nodes * std::max(compute, transfer);
  point.hidden = transfer > 0 ? std::min(1.0, compute / transfer) : 1.0;
  const double queries = double(in.batch) * double(in.heads) * rows * double(in.d) * sizeof(float);
  point.bytes_per_node = 2 * queries + double(in.batch) * double(in.heads) * rows * sizeof(float) + 3 * block_bytes(in, rows);
  return point;
}

double ring_rows_to_hide(const RingModelInputs& in) {
  // compute(rows) = transfer(rows): 4·B·H·rows²·D·c / R_node = B·Hkv·rows·2D·4 / L.
  const double node_flops = in.core_flops * in.cores_per_node, c = in.causal ? 0.5 : 1.0;
  return double(in.kv_heads) * 2.0 * sizeof(float) * node_flops / (4.0 * double(in.heads) * c * in.link_bytes);
}

#if defined(LONGATTN_WITH_MPI)
namespace {

std::int64_t kv_heads_of(const RingBenchConfig& c) { return c.kv_heads > 0 ? c.kv_heads : c.heads; }

// The time of passing a block of `bytes` once around the ring, nothing computed.
double ring_pass_seconds(std::int64_t bytes, int rank, int ranks) {
  std::vector<char> a(static_cast<std::size_t>(bytes)), b(a.size());
  MPI_Barrier(MPI_COMM_WORLD);
  return bench::seconds_of([&] {
    for (int step = 0; step + 1 < ranks; ++step) {
      MPI_Sendrecv(a.data(), static_cast<int>(bytes), MPI_BYTE, (rank + 1) % ranks, step, b.data(),
                   static_cast<int>(bytes), MPI_BYTE, (rank - 1 + ranks) % ranks, step, MPI_COMM_WORLD,
                   MPI_STATUS_IGNORE);
      std::swap(a, b);
    }
  });
}

struct RankTimes {
  double seconds, compute, wait, pass;
};

void print_model(const RingBenchConfig& c, const RingModelInputs& in, double link_measured) {
  std::printf("\ncluster model: %.1f GFLOP/s per core (measured above) x %d cores per node, link %.1f Gbit/s",
              in.core_flops * 1e-9, in.cores_per_node, in.link_bytes * 8e-9);
  if (link_measured > 0) std::printf(" (this machine's shared memory: %.1f Gbit/s)", link_measured * 8e-9);
  std::printf("\n  a block's transfer hides behind its attention from %.0f rows per node\n", ring_rows_to_hide(in));
  std::printf("  %10s", "n \\ nodes");
  for (int nodes : c.model_nodes) std::printf(" | %29d", nodes);
  std::printf("\n");
  for (std::int64_t n = std::int64_t{1} << 20; n <= std::int64_t{16} << 20; n *= 2) {
    std::printf("  %9lldM", static_cast<long long>(n >> 20));
    for (int nodes : c.model_nodes) {
      const RingModelPoint p = ring_model(in, n, nodes);
      const bool hours = p.seconds >= 3600;
      std::printf(" | %8.1f %s %7.2f GiB %3.0f %%", hours ? p.seconds / 3600 : p.seconds, hours ? "h" : "s",
                  p.bytes_per_node / 1073741824.0, 100 * p.hidden);
    }
    std::printf("\n");
  }
  std::printf("  (time of one layer's attention, memory per node, share of each transfer hidden)\n");
}

}  // namespace

namespace {

// This rank's medians over the repeats of the ring, and the time of passing its block alone.
RankTimes time_ring(const RingBenchConfig& c, const AttentionOptions& options, std::int64_t& block_bytes) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const RingBalance balance = c.balance == "contiguous" ? RingBalance::contiguous : RingBalance::zigzag;
  const RingSlice slice = ring_slice(c.n, rank, ranks, balance);
  const std::int64_t rows = slice.rows(), B = c.batch, H = c.heads, Hkv = kv_heads_of(c), D = c.d;
  const bench::Tensor q = bench::random_tensor(B * H * rows * D, 1 + rank),
                      k = bench::random_tensor(B * Hkv * rows * D, 100 + rank),
                      v = bench::random_tensor(B * Hkv * rows * D, 200 + rank);
  std::vector<float> out(static_cast<std::size_t>(B * H * rows * D));
  std::vector<double> seconds, compute, wait;
  RingStats stats;
  for (int r = 0; r <= c.repeats; ++r) {  // the first is a warm-up
    MPI_Barrier(MPI_COMM_WORLD);
    stats = ring_attention(MPI_COMM_WORLD, slice, bhnd(q.data(), B, H, rows, D), bhnd(k.data(), B, Hkv, rows, D),
                           bhnd(v.data(), B, Hkv, rows, D), bhnd(out.data(), B, H, rows, D), options);
    if (r == 0) continue;
    seconds.push_back(stats.seconds), compute.push_back(stats.compute_seconds), wait.push_back(stats.wait_seconds);
  }
  block_bytes = stats.blocks_sent > 0 ? stats.bytes_sent / stats.blocks_sent : 0;
  return {bench::median(seconds), bench::median(compute), bench::median(wait),
          ring_pass_seconds(block_bytes, rank, ranks)};
}

// One rank alone on the whole sequence: the median time and the FLOPs of a call.
std::array<double, 2> time_alone(const RingBenchConfig& c, const AttentionOptions& options) {
  const std::int64_t B = c.batch, H = c.heads, Hkv = kv_heads_of(c), D = c.d;
  const bench::Tensor whole = bench::random_tensor(B * H * c.n * D, 7);
  std::vector<float> out(whole.size());
  double flops = 0;
  const double seconds = bench::median_seconds(
      [&] {
        flops = attention(bhnd(whole.data(), B, H, c.n, D), bhnd(whole.data(), B, Hkv, c.n, D),
                          bhnd(whole.data(), B, Hkv, c.n, D), bhnd(out.data(), B, H, c.n, D), options)
                    .flops;
      },
      c.repeats);
  return {seconds, flops};
}

// Prints each rank's times; returns the slowest call, the longest wait and the longest pass.
RankTimes print_ranks(const RingBenchConfig& c, const std::vector<RankTimes>& all) {
  const std::int64_t Hkv = kv_heads_of(c);
  std::printf("ring attention: n %lld, D %lld, %lld heads (%lld kv), batch %lld, %s, %s balance, %zu ranks of %d thread%s\n",
              (long long)c.n, (long long)c.d, (long long)c.heads, (long long)Hkv, (long long)c.batch,
              c.causal ? "causal" : "full", c.balance.c_str(), all.size(), c.threads, c.threads == 1 ? "" : "s");
  RankTimes worst{0, 0, 0, 0};
  for (std::size_t r = 0; r < all.size(); ++r) {
    std::printf("  rank %zu: %.3f s a call, compute %.3f s, waiting %.4f s; passing its blocks alone %.4f s\n", r,
                all[r].seconds, all[r].compute, all[r].wait, all[r].pass);
    worst = {std::max(worst.seconds, all[r].seconds), std::max(worst.compute, all[r].compute),
             std::max(worst.wait, all[r].wait), std::max(worst.pass, all[r].pass)};
  }
  return worst;
}

}  // namespace

void run_ring_bench(const RingBenchConfig& c) {
  ensure_mpi();
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (!c.model_nodes.empty() && c.link_gbps <= 0 && ranks < 2) {
    throw Error("--model: give the link's rate (Gbit/s), or run on 2 ranks or more to measure one");
  }
  AttentionOptions options;
  options.threads = c.threads;
  if (c.causal) options.window = Window::causal();
  std::int64_t block = 0;
  const RankTimes mine = time_ring(c, options, block);
  std::vector<RankTimes> all(static_cast<std::size_t>(ranks));
  MPI_Gather(&mine, 4, MPI_DOUBLE, all.data(), 4, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  if (rank != 0) return;

  const auto [one_rank, flops] = time_alone(c, options);
  const RankTimes worst = print_ranks(c, all);
  std::printf("one rank alone: %.3f s (%.1f GFLOP/s); speed-up %.2fx", one_rank, flops / one_rank * 1e-9,
              one_rank / worst.seconds);
  if (ranks > 1) std::printf("; communication hidden %.0f %%", 100.0 * std::max(0.0, 1.0 - worst.wait / worst.pass));
  std::printf("\n");
  if (c.model_nodes.empty()) return;
  const double link_measured = ranks > 1 && worst.pass > 0 ? double(block) * (ranks - 1) / worst.pass : 0;
  const RingModelInputs in{.core_flops = flops / one_rank / c.threads,
                           .link_bytes = c.link_gbps > 0 ? c.link_gbps * 1e9 / 8 : link_measured,
                           .cores_per_node = c.cores_per_node, .d = c.d, .heads = c.heads,
                           .kv_heads = kv_heads_of(c), .batch = c.batch, .causal = c.causal};
  if (link_measured > 0) {  // the model against this very run
    RingModelInputs here = in;
    here.link_bytes = link_measured, here.cores_per_node = c.threads;
    std::printf("the model of this run (%d ranks, the link measured here): %.3f s; measured %.3f s\n", ranks,
                ring_model(here, c.n, ranks).seconds, worst.seconds);
  }
  print_model(c, in, link_measured);
}

#else

void run_ring_bench(const RingBenchConfig&) {
  throw Error("--ring: this longattn was built without MPI (CMake found none)");
}

#endif

}  // namespace longattn::tools
