#include "tools/ring_run.hpp"

#include <algorithm>
#include <string>

#include "longattn/error.hpp"

#if defined(LONGATTN_WITH_MPI)
#include <mpi.h>

#include "longattn/ring.hpp"
#endif

namespace longattn::tools {

#if defined(LONGATTN_WITH_MPI)
namespace {

// MPI for the process's lifetime, started here unless the application did.
void ensure_mpi() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) return;
  MPI_Init(nullptr, nullptr);
  static struct Finalizer {
    ~Finalizer() {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    }
  } finalizer;
}

// Rows of a [B, H, N, width] view that a slice names, in its order: contiguous [B, H, rows, width].
std::vector<float> slice_rows(const HeadsView<const float>& x, const RingSlice& slice) {
  std::vector<float> rows;
  for (std::int64_t b = 0; b < x.shape[0]; ++b)
    for (std::int64_t h = 0; h < x.shape[1]; ++h)
      for (const auto& [start, length] : slice.segments)
        for (std::int64_t i = start; i < start + length; ++i)
          for (std::int64_t c = 0; c < x.shape[3]; ++c) {
            rows.push_back(x.data[b * x.strides[0] + h * x.strides[1] + i * x.strides[2] + c * x.strides[3]]);
          }
  return rows;
}

// Every rank's rows of a [B, H, rows, width] array onto rank 0, placed at their global rows.
std::vector<float> gather_rows(const std::vector<float>& mine, std::int64_t B, std::int64_t H, std::int64_t n,
                               std::int64_t width, int rank, int ranks, RingBalance balance) {
  std::vector<int> counts(ranks), displacements(ranks);
  for (int r = 0, total = 0; r < ranks; ++r) {
    counts[r] = static_cast<int>(B * H * ring_slice(n, r, ranks, balance).rows() * width);
    displacements[r] = total;
    total += counts[r];
  }
  std::vector<float> all(rank == 0 ? static_cast<std::size_t>(B * H * n * width) : 0);
  MPI_Gatherv(mine.data(), static_cast<int>(mine.size()), MPI_FLOAT, all.data(), counts.data(), displacements.data(),
              MPI_FLOAT, 0, MPI_COMM_WORLD);
  if (rank != 0) return {};
  std::vector<float> whole(all.size());
  for (int r = 0; r < ranks; ++r) {
    const RingSlice slice = ring_slice(n, r, ranks, balance);
    const float* from = all.data() + displacements[r];
    for (std::int64_t bh = 0; bh < B * H; ++bh)
      for (const auto& [start, length] : slice.segments) {
        std::copy_n(from, length * width, whole.data() + (bh * n + start) * width);
        from += length * width;
      }
  }
  return whole;
}

}  // namespace

RingRun run_on_ring(const HeadsView<const float>& q, const HeadsView<const float>& k, const HeadsView<const float>& v,
                    const AttentionOptions& options, const std::string& balance_name, bool with_lse) {
  ensure_mpi();
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const RingBalance balance = balance_name == "contiguous" ? RingBalance::contiguous : RingBalance::zigzag;
  const std::int64_t B = q.shape[0], Hq = q.shape[1], Hkv = k.shape[1], n = q.shape[2], Dv = v.shape[3];
  if (k.shape[2] != n) throw Error("--ring: self-attention over one sequence: q and k need as many tokens");
  const RingSlice slice = ring_slice(n, rank, ranks, balance);
  const std::int64_t rows = slice.rows();
  const std::vector<float> my_q = slice_rows(q, slice), my_k = slice_rows(k, slice), my_v = slice_rows(v, slice);
  std::vector<float> out(static_cast<std::size_t>(B * Hq * rows * Dv)), lse(static_cast<std::size_t>(B * Hq * rows));
  RingRun run;
  run.stats = ring_attention(MPI_COMM_WORLD, slice, bhnd(my_q.data(), B, Hq, rows, q.shape[3]),
                             bhnd(my_k.data(), B, Hkv, rows, k.shape[3]), bhnd(my_v.data(), B, Hkv, rows, Dv),
                             bhnd(out.data(), B, Hq, rows, Dv), options,
                             with_lse ? bhn(lse.data(), B, Hq, rows) : TensorView<float, 3>{})
                  .attention;
  run.out = gather_rows(out, B, Hq, n, Dv, rank, ranks, balance);
  if (with_lse) run.lse = gather_rows(lse, B, Hq, n, 1, rank, ranks, balance);
  run.writer = rank == 0;
  return run;
}

#else

RingRun run_on_ring(const HeadsView<const float>&, const HeadsView<const float>&, const HeadsView<const float>&,
                    const AttentionOptions&, const std::string&, bool) {
  throw Error("--ring: this longattn was built without MPI (CMake found none)");
}

#endif

}  // namespace longattn::tools
