#include "mpi/ring_checks.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "longattn/error.hpp"

namespace longattn::mpi {
namespace {

constexpr int kMessageBytes = 256;

// A rank's sizes, which every rank must agree on.
enum Field { kBatch, kQHeads, kKvHeads, kD, kDv, kRows, kSegments, kElementBytes, kFields };
constexpr const char* kFieldNames[kFields] = {"batch", "q heads", "kv heads", "D", "Dv", "", "", "element type"};

// This rank's own checks: views, options, and what a ring cannot split.
template <class T>
std::string check_locally(const RingSlice& slice, const HeadsView<const T>& q, const HeadsView<const T>& k,
                          const HeadsView<const T>& v, const HeadsView<float>& out, const TensorView<float, 3>& lse,
                          const AttentionOptions& options, engine::AttentionShape& shape) {
  try {
    shape = engine::validate_views(q, k, v, out, lse);
    if (shape.nq != shape.nk) {
      throw Error("ring attention: q and k hold this rank's rows of one sequence, got " + std::to_string(shape.nq) +
                  " and " + std::to_string(shape.nk));
    }
    if (slice.rows() != shape.nq) {
      throw Error("ring attention: the slice's segments hold " + std::to_string(slice.rows()) + " rows, q holds " +
                  std::to_string(shape.nq));
    }
    for (const auto& [start, length] : slice.segments) {
      if (start < 0 || length < 0) throw Error("ring attention: slice segments need start >= 0 and length >= 0");
    }
    if (!options.mask.empty() || options.block_sparse.enabled() || !options.score_bias.empty()) {
      throw Error("ring attention: a mask, block-sparse layout or score bias is not split across ranks; use windows or "
                  "key_lengths");
    }
    if (!options.sinks.empty() || options.sink_keys > 0 || !options.cu_seqlens_q.empty()) {
      throw Error("ring attention: sinks, sink keys and packed sequences are not split across ranks");
    }
    if (options.positions.query_start || options.positions.key_start != 0) {
      throw Error("ring attention: positions are the rows' global indices, set by the ring");
    }
    AttentionOptions local = options;
    local.key_lengths = {};  // global lengths, checked against the whole sequence below
    engine::validate_options(shape, local, !lse.empty());
    if (!options.key_lengths.empty() && static_cast<std::int64_t>(options.key_lengths.size()) != shape.batch) {
      throw Error("ring attention: key_lengths: expected one length per batch (" + std::to_string(shape.batch) + ")");
    }
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

// Every rank's segments, and the sequence they cover (each row exactly once), or why not.
std::string gather_slices(MPI_Comm comm, const RingSlice& slice, const std::vector<std::int64_t>& fields,
                          RingLayout& layout) {
  std::vector<int> counts(layout.ranks), displacements(layout.ranks);
  int total = 0;
  for (int r = 0; r < layout.ranks; ++r) {
    counts[r] = static_cast<int>(2 * fields[r * kFields + kSegments]);
    displacements[r] = total;
    total += counts[r];
  }
  std::vector<std::int64_t> mine;
  for (const auto& [start, length] : slice.segments) mine.insert(mine.end(), {start, length});
  std::vector<std::int64_t> all(static_cast<std::size_t>(total));
  MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_INT64_T, all.data(), counts.data(),
                 displacements.data(), MPI_INT64_T, comm);
  std::vector<std::array<std::int64_t, 2>> covered;
  layout.slices.resize(layout.ranks);
  for (int r = 0; r < layout.ranks; ++r) {
    for (int i = 0; i < counts[r]; i += 2) {
      const std::array<std::int64_t, 2> segment{all[displacements[r] + i], all[displacements[r] + i + 1]};
      layout.slices[r].segments.push_back(segment);
      if (segment[1] > 0) covered.push_back(segment);
    }
    layout.most_rows = std::max(layout.most_rows, layout.slices[r].rows());
  }
  std::sort(covered.begin(), covered.end());
  for (const auto& [start, length] : covered) {
    if (start != layout.n) {
      return "ring attention: the ranks' segments must cover rows 0 ... n - 1 once each; row " +
             std::to_string(std::min(start, layout.n)) + (start < layout.n ? " is held twice" : " by no rank");
    }
    layout.n += length;
  }
  return {};
}

}  // namespace

void agree(MPI_Comm comm, const std::string& problem) {
  int ranks = 1;
  MPI_Comm_size(comm, &ranks);
  char message[kMessageBytes] = {};
  std::strncpy(message, problem.c_str(), kMessageBytes - 1);
  std::vector<char> messages(static_cast<std::size_t>(ranks * kMessageBytes));
  MPI_Allgather(message, kMessageBytes, MPI_CHAR, messages.data(), kMessageBytes, MPI_CHAR, comm);
  for (int r = 0; r < ranks; ++r) {
    if (messages[r * kMessageBytes] != '\0') throw Error("rank " + std::to_string(r) + ": " + &messages[r * kMessageBytes]);
  }
}

template <class T>
RingLayout check_collectively(MPI_Comm comm, const RingSlice& slice, const HeadsView<const T>& q,
                              const HeadsView<const T>& k, const HeadsView<const T>& v, const HeadsView<float>& out,
                              const TensorView<float, 3>& lse, const AttentionOptions& options,
                              std::size_t element_bytes) {
  RingLayout layout;
  MPI_Comm_rank(comm, &layout.rank);
  MPI_Comm_size(comm, &layout.ranks);
  engine::AttentionShape& s = layout.shape;
  std::string problem = check_locally(slice, q, k, v, out, lse, options, s);
  const std::int64_t mine[kFields] = {s.batch, s.q_heads, s.kv_heads, s.d, s.dv, s.nq,
                                      static_cast<std::int64_t>(slice.segments.size()),
                                      static_cast<std::int64_t>(element_bytes)};
  agree(comm, problem);
  std::vector<std::int64_t> fields(static_cast<std::size_t>(layout.ranks * kFields));
  MPI_Allgather(mine, kFields, MPI_INT64_T, fields.data(), kFields, MPI_INT64_T, comm);
  for (int r = 1; r < layout.ranks; ++r) {
    for (int f = 0; f < kFields; ++f) {
      if (kFieldNames[f][0] != '\0' && fields[r * kFields + f] != fields[f]) {
        throw Error("ring attention: the ranks disagree on " + std::string(kFieldNames[f]) + ": rank 0 has " +
                    std::to_string(fields[f]) + ", rank " + std::to_string(r) + " " +
                    std::to_string(fields[r * kFields + f]));
      }
    }
  }
  problem = gather_slices(comm, slice, fields, layout);
  if (problem.empty()) {
    for (std::int64_t length : options.key_lengths) {
      if (length < 0 || length > layout.n) {
        problem = "ring attention: key_lengths: expected 0 ... " + std::to_string(layout.n) + " (the sequence's rows), got " +
                  std::to_string(length);
      }
    }
  }
  if (!problem.empty()) throw Error(problem);  // the same on every rank: all gathered
  return layout;
}

template RingLayout check_collectively(MPI_Comm, const RingSlice&, const HeadsView<const float>&,
                                       const HeadsView<const float>&, const HeadsView<const float>&,
                                       const HeadsView<float>&, const TensorView<float, 3>&, const AttentionOptions&,
                                       std::size_t);
template RingLayout check_collectively(MPI_Comm, const RingSlice&, const HeadsView<const bf16>&,
                                       const HeadsView<const bf16>&, const HeadsView<const bf16>&,
                                       const HeadsView<float>&, const TensorView<float, 3>&, const AttentionOptions&,
                                       std::size_t);

}  // namespace longattn::mpi
