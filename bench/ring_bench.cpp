// Ring attention across the ranks mpirun starts, against one rank alone on the whole
// sequence: `mpirun -np P longattn_ring_bench --n N --d D --heads H [--causal] [--balance
// zigzag|contiguous] [--repeats R]` prints, per rank, the median time of a call, its compute
// and its wait for the next block, and on rank 0 the speed-up over one rank and how much of
// the keys' and values' travel was hidden behind computation.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/measure.hpp"
#include "longattn/longattn.hpp"
#include "longattn/ring.hpp"

using namespace longattn;

namespace {

struct Args {
  std::int64_t n = 32768, d = 64, heads = 8;
  bool causal = false;
  RingBalance balance = RingBalance::zigzag;
  int repeats = 3;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (arg == "--n") a.n = std::stoll(next());
    else if (arg == "--d") a.d = std::stoll(next());
    else if (arg == "--heads") a.heads = std::stoll(next());
    else if (arg == "--causal") a.causal = true;
    else if (arg == "--balance") a.balance = next() == "contiguous" ? RingBalance::contiguous : RingBalance::zigzag;
    else if (arg == "--repeats") a.repeats = std::stoi(next());
  }
  return a;
}

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

// The time of passing every rank's block once around the ring, nothing computed.
double ring_pass_seconds(std::int64_t bytes, int rank, int ranks) {
  std::vector<char> a(static_cast<std::size_t>(bytes)), b(a.size());
  MPI_Barrier(MPI_COMM_WORLD);
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; step + 1 < ranks; ++step) {
    MPI_Sendrecv(a.data(), static_cast<int>(bytes), MPI_BYTE, (rank + 1) % ranks, step, b.data(),
                 static_cast<int>(bytes), MPI_BYTE, (rank - 1 + ranks) % ranks, step, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    std::swap(a, b);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const Args a = parse(argc, argv);
  AttentionOptions options;
  options.threads = 1;
  if (a.causal) options.window = Window::causal();
  const RingSlice slice = ring_slice(a.n, rank, ranks, a.balance);
  const std::int64_t rows = slice.rows(), H = a.heads, D = a.d;
  const bench::Tensor q = bench::random_tensor(H * rows * D, 1 + rank), k = bench::random_tensor(H * rows * D, 100 + rank),
                      v = bench::random_tensor(H * rows * D, 200 + rank);
  std::vector<float> out(H * rows * D);
  std::vector<double> seconds, compute, wait;
  RingStats stats;
  for (int r = 0; r <= a.repeats; ++r) {  // the first is a warm-up
    MPI_Barrier(MPI_COMM_WORLD);
    stats = ring_attention(MPI_COMM_WORLD, slice, bhnd(q.data(), 1, H, rows, D), bhnd(k.data(), 1, H, rows, D),
                           bhnd(v.data(), 1, H, rows, D), bhnd(out.data(), 1, H, rows, D), options);
    if (r == 0) continue;
    seconds.push_back(stats.seconds), compute.push_back(stats.compute_seconds), wait.push_back(stats.wait_seconds);
  }
  const double pass = ring_pass_seconds(stats.bytes_sent / std::max(1, ranks - 1), rank, ranks);
  double one_rank = 0;
  if (rank == 0) {  // one rank alone on the whole sequence, the others idle
    const bench::Tensor wq = bench::random_tensor(H * a.n * D, 7);
    std::vector<float> wout(wq.size());
    std::vector<double> alone;
    for (int r = 0; r <= a.repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      attention(bhnd(wq.data(), 1, H, a.n, D), bhnd(wq.data(), 1, H, a.n, D), bhnd(wq.data(), 1, H, a.n, D),
                bhnd(wout.data(), 1, H, a.n, D), options);
      if (r > 0) alone.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    one_rank = median(alone);
  }
  const double mine[4] = {median(seconds), median(compute), median(wait), pass};
  std::vector<double> all(4 * static_cast<std::size_t>(ranks));
  MPI_Gather(mine, 4, MPI_DOUBLE, all.data(), 4, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    std::printf("ring attention: n %lld, D %lld, %lld heads, %s, %s balance, %d ranks of 1 thread\n",
                static_cast<long long>(a.n), static_cast<long long>(D), static_cast<long long>(H),
                a.causal ? "causal" : "full", a.balance == RingBalance::zigzag ? "zigzag" : "contiguous", ranks);
    double slowest = 0, waited = 0, passing = 0;
    for (int r = 0; r < ranks; ++r) {
      std::printf("  rank %d: %.3f s a call, compute %.3f s, waiting %.4f s; passing the blocks alone %.4f s\n", r,
                  all[4 * r], all[4 * r + 1], all[4 * r + 2], all[4 * r + 3]);
      slowest = std::max(slowest, all[4 * r]), waited = std::max(waited, all[4 * r + 2]);
      passing = std::max(passing, all[4 * r + 3]);
    }
    std::printf("one rank alone: %.3f s; speed-up %.2fx; communication hidden %.0f %%\n", one_rank, one_rank / slowest,
                passing > 0 ? 100.0 * std::max(0.0, 1.0 - waited / passing) : 100.0);
  }
  MPI_Finalize();
  return 0;
}
