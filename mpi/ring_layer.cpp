// The multi-head layer across ranks: the layer's own projections on each rank's rows, with
// ring attention in place of its kernel.
#include "longattn/ring.hpp"
#include "mpi/ring_checks.hpp"

namespace longattn {

RingLayerStats ring_forward(MPI_Comm comm, const RingSlice& slice, const MultiHeadSelfAttention& layer,
                            TensorView<const float, 3> x, TensorView<float, 3> y) {
  RingLayerStats stats;
  SequenceRows rows;
  rows.segments = slice.segments;
  rows.agree = [comm](const std::string& problem) { mpi::agree(comm, problem); };
  rows.attend = [&](HeadsView<const float> q, HeadsView<const float> k, HeadsView<const float> v, HeadsView<float> out,
                    const AttentionOptions& options) {
    stats.ring = ring_attention(comm, slice, q, k, v, out, options);
    return stats.ring.attention;
  };
  stats.layer = layer.forward(x, y, rows);
  return stats;
}

}  // namespace longattn
