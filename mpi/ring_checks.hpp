// What every rank of a ring must agree on before the ring starts: each rank's arguments
// checked where they are, then everything gathered, so that a bad argument on any rank is
// an Error on every rank (never a rank left waiting in the ring).
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/attention_validation.hpp"
#include "longattn/ring.hpp"

namespace longattn::mpi {

struct RingLayout {
  int rank = 0, ranks = 1;
  engine::AttentionShape shape;   // this rank's: Nq = Nk = its rows
  std::vector<RingSlice> slices;  // every rank's, by rank
  std::int64_t n = 0;             // rows of the whole sequence
  std::int64_t most_rows = 0;     // the most rows any rank holds
};

// Throws on every rank of comm the first rank's problem, if any rank has one (empty: none).
// Collective.
void agree(MPI_Comm comm, const std::string& problem);

template <class T>
RingLayout check_collectively(MPI_Comm comm, const RingSlice& slice, const HeadsView<const T>& q,
                              const HeadsView<const T>& k, const HeadsView<const T>& v, const HeadsView<float>& out,
                              const TensorView<float, 3>& lse, const AttentionOptions& options,
                              std::size_t element_bytes);

}  // namespace longattn::mpi
