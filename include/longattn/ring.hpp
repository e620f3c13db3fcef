// Exact attention over a sequence split across the ranks of an MPI communicator (ring
// attention, Liu et al. 2023): each rank keeps its rows of q and passes its rows of k and v
// around the ring, the next block travelling while the current one is computed; partial
// results merge exactly through their log-sum-exp, as split keys do within one process.
// Link longattn::mpi (built where CMake finds MPI).
#pragma once

#include <mpi.h>

#include <array>
#include <cstdint>
#include <vector>

#include "longattn/attention.hpp"
#include "longattn/multi_head.hpp"

namespace longattn {

// How a sequence's rows are dealt to the ranks: contiguous (as even as they go, the first
// n mod P ranks one row more) or zigzag (2P chunks, rank r holding chunks r and 2P - 1 - r,
// so that every rank sees as many causal pairs as the others).
enum class RingBalance { contiguous, zigzag };

// The rows of the sequence a rank holds, as segments [start, start + length) of global row
// indices in the order they lie in its tensors.
struct RingSlice {
  std::vector<std::array<std::int64_t, 2>> segments;  // {start, length}

  std::int64_t rows() const;
};

// What one rank's ring did: its attention work, and where its time went.
struct RingStats {
  AttentionStats attention;      // this rank's FLOPs and visible pairs (their sum over ranks: the sequence's)
  double seconds = 0;            // the whole call
  double compute_seconds = 0;    // attention on the blocks
  double wait_seconds = 0;       // waiting for the next block once the current one was done
  std::int64_t bytes_sent = 0;   // keys and values passed on
  std::int64_t blocks_sent = 0;  // blocks passed on: the ring's steps, fewer under a window
};

// Rank `rank`'s rows of an n-row sequence dealt to `ranks` ranks.
LONGATTN_API RingSlice ring_slice(std::int64_t n, int rank, int ranks, RingBalance balance);

// Self-attention over one sequence of n rows whose rows lie on the ranks of `comm`: every
// rank passes its own rows of q, k and v ([B, H, rows, D], its slice's rows in order) and
// gets its rows of out (and lse). Collective: every rank of comm calls it with the same
// options. Query and key positions are global row indices, so windows, RoPE, ALiBi and the
// relative bias see the whole sequence; key_lengths are global lengths per batch. A window
// passes blocks only to the ranks it reaches. Linear attention (full or causal) passes no
// keys: each rank gathers every segment's key state and starts from those it sees. Not across
// ranks (an Error on every rank): masks, block-sparse layouts, positions.
// Any rank's bad argument throws Error on every rank before anything is written.
LONGATTN_API RingStats ring_attention(MPI_Comm comm, const RingSlice& slice, HeadsView<const float> q,
                                      HeadsView<const float> k, HeadsView<const float> v, HeadsView<float> out,
                                      const AttentionOptions& options = {}, TensorView<float, 3> lse = {});
LONGATTN_API RingStats ring_attention(MPI_Comm comm, const RingSlice& slice, HeadsView<const bf16> q,
                                      HeadsView<const bf16> k, HeadsView<const bf16> v, HeadsView<float> out,
                                      const AttentionOptions& options = {}, TensorView<float, 3> lse = {});

// What a layer split across ranks did on this rank.
struct RingLayerStats {
  MultiHeadStats layer;  // projections and attention, as forward reports them
  RingStats ring;        // the attention's ring
};

// The multi-head layer over a sequence whose rows lie on the ranks of `comm`: each rank
// projects its own rows of x ([B, rows, E], its slice's rows in order), ring attention joins
// the ranks, and each rank projects its own rows of y. Absolute positions and RoPE sit at the
// rows' global positions. Collective: every rank passes a layer of the same weights. Any
// rank's bad argument throws Error on every rank before anything is written.
LONGATTN_API RingLayerStats ring_forward(MPI_Comm comm, const RingSlice& slice, const MultiHeadSelfAttention& layer,
                                         TensorView<const float, 3> x, TensorView<float, 3> y);

}  // namespace longattn
