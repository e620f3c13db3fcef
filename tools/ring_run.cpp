#include "tools/ring_run.hpp"

#include <algorithm>
#include <string>

#include "longattn/error.hpp"

#if defined(LONGATTN_WITH_MPI)
#include <mpi.h>

#include "bench/measure.hpp"
#include "longattn/ring.hpp"
#include "tools/heads_file.hpp"
#include "tools/npy.hpp"
#endif

namespace longattn::tools {

#if defined(LONGATTN_WITH_MPI)

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

namespace {

// This rank's rows of a float32 [B, H, N, D] (bhnd) or [B, N, H, D] (bnhd) file, in its layout.
std::vector<float> read_rows(const std::string& file, const std::string& layout, const RingSlice& slice,
                             std::vector<std::int64_t>& shape) {
  return heads_values(npy::load_rows(file, layout == "bnhd" ? 1 : 2, slice.segments), file, shape);
}

// Every rank's rows of a [B, H, rows, width] array onto rank 0, placed at their global rows of
// a [B, H, N, width] array in `layout`.
std::vector<float> gather_rows(const std::vector<float>& mine, std::int64_t B, std::int64_t H, std::int64_t n,
                               std::int64_t width, int rank, int ranks, RingBalance balance, const std::string& layout) {
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
  const std::vector<std::int64_t> shape = layout == "bnhd" ? std::vector<std::int64_t>{B, n, H, width}
                                                           : std::vector<std::int64_t>{B, H, n, width};
  const HeadsView<float> to = heads_view(whole.data(), shape, layout);
  for (int r = 0; r < ranks; ++r) {
    const float* from = all.data() + displacements[r];
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < H; ++h)
        for (const auto& [start, length] : ring_slice(n, r, ranks, balance).segments)
          for (std::int64_t i = start; i < start + length; ++i, from += width) {
            std::copy_n(from, width, to.data + b * to.strides[0] + h * to.strides[1] + i * to.strides[2]);
          }
  }
  return whole;
}

}  // namespace

RingRun run_on_ring(const RingFiles& files, const AttentionOptions& options) {
  ensure_mpi();
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const RingBalance balance = files.balance == "contiguous" ? RingBalance::contiguous : RingBalance::zigzag;
  const std::vector<std::int64_t> whole = npy::load_header(files.q).shape;
  if (whole.size() != 4) throw Error(files.q + ": expected 4 dimensions, got shape " + shape_text(whole));
  RingRun run;
  run.n = whole[files.layout == "bnhd" ? 1 : 2];
  const RingSlice slice = ring_slice(run.n, rank, ranks, balance);
  std::vector<std::int64_t> qs, ks, vs;
  const std::vector<float> q = read_rows(files.q, files.layout, slice, qs), k = read_rows(files.k, files.layout, slice, ks),
                           v = read_rows(files.v, files.layout, slice, vs);
  const auto qv = heads_view<const float>(q.data(), qs, files.layout), kv = heads_view<const float>(k.data(), ks, files.layout),
             vv = heads_view<const float>(v.data(), vs, files.layout);
  run.batch = qv.shape[0], run.q_heads = qv.shape[1], run.dv = vv.shape[3];
  const std::int64_t B = run.batch, Hq = run.q_heads, rows = slice.rows(), Dv = run.dv;
  std::vector<float> out(static_cast<std::size_t>(B * Hq * rows * Dv)), lse(static_cast<std::size_t>(B * Hq * rows));
  const auto out_view = bhnd(out.data(), B, Hq, rows, Dv);
  const auto lse_view = files.with_lse ? bhn(lse.data(), B, Hq, rows) : TensorView<float, 3>{};
  if (files.bf16) {
    const bench::Bf16Tensor qh = bench::rounded_to_bf16(q), kh = bench::rounded_to_bf16(k), vh = bench::rounded_to_bf16(v);
    run.stats = ring_attention(MPI_COMM_WORLD, slice, heads_view<const bf16>(qh.data(), qs, files.layout),
                               heads_view<const bf16>(kh.data(), ks, files.layout),
                               heads_view<const bf16>(vh.data(), vs, files.layout), out_view, options, lse_view)
                    .attention;
  } else {
    run.stats = ring_attention(MPI_COMM_WORLD, slice, qv, kv, vv, out_view, options, lse_view).attention;
  }
  run.out = gather_rows(out, B, Hq, run.n, Dv, rank, ranks, balance, files.layout);
  if (files.with_lse) run.lse = gather_rows(lse, B, Hq, run.n, 1, rank, ranks, balance, "bhnd");
  run.writer = rank == 0;
  return run;
}

#else

RingRun run_on_ring(const RingFiles&, const AttentionOptions&) {
  throw Error("--ring: this longattn was built without MPI (CMake found none)");
}

#endif

}  // namespace longattn::tools
