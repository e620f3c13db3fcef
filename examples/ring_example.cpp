// Ring attention across the ranks of mpirun, built against an installed longattn::mpi:
//   mpirun -np 2 ring_example
// Every rank makes the same sequence, computes its own rows across the ring, and checks them
// against one process's attention on the whole sequence.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "longattn/longattn.hpp"
#include "longattn/ring.hpp"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const std::int64_t H = 2, n = 500, D = 32;
  std::vector<float> x(H * n * D), whole(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  longattn::AttentionOptions options;
  options.window = longattn::Window::causal();
  const auto all = longattn::bhnd(static_cast<const float*>(x.data()), 1, H, n, D);
  longattn::attention(all, all, all, longattn::bhnd(whole.data(), 1, H, n, D), options);

  const longattn::RingSlice slice = longattn::ring_slice(n, rank, ranks, longattn::RingBalance::zigzag);
  const std::int64_t rows = slice.rows();
  std::vector<float> mine, out(H * rows * D), expected;
  for (std::int64_t h = 0; h < H; ++h)
    for (const auto& [start, length] : slice.segments) {
      mine.insert(mine.end(), x.begin() + (h * n + start) * D, x.begin() + (h * n + start + length) * D);
      expected.insert(expected.end(), whole.begin() + (h * n + start) * D, whole.begin() + (h * n + start + length) * D);
    }
  const auto view = longattn::bhnd(static_cast<const float*>(mine.data()), 1, H, rows, D);
  longattn::ring_attention(MPI_COMM_WORLD, slice, view, view, view, longattn::bhnd(out.data(), 1, H, rows, D), options);
  double error = 0;
  for (std::size_t i = 0; i < out.size(); ++i) error = std::fmax(error, std::fabs(out[i] - expected[i]));
  std::printf("rank %d of %d: %lld rows, largest difference from one process %.2g\n", rank, ranks,
              static_cast<long long>(rows), error);
  MPI_Finalize();
  return error <= 1e-5 ? 0 : 1;
}
