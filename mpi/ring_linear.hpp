// Linear attention across ranks: no keys travel, only states. Each rank sums φ(k) vᵀ and
// φ(k) over each of its segments, every rank gathers every segment's sums, and each segment
// of queries starts from the sums of the segments it sees (before it when causal, all others
// under the full window) — the prefix scan of the recurrent form, over ranks.
#pragma once

#include <mpi.h>

#include "longattn/ring.hpp"
#include "mpi/ring_checks.hpp"

namespace longattn::mpi {

template <class T>
AttentionStats linear_ring(MPI_Comm comm, const RingLayout& layout, const RingSlice& slice,
                           const HeadsView<const T>& q, const HeadsView<const T>& k, const HeadsView<const T>& v,
                           const HeadsView<float>& out, const AttentionOptions& options);

}  // namespace longattn::mpi
