// Packed sequences (AttentionOptions::cu_seqlens_q / _k): sequences of different lengths laid
// end to end in one batch, each run as the problem of its own rows, so the work is the sum
// over sequences, never the longest one times their count.
#pragma once

#include "engine/attention_validation.hpp"
#include "longattn/options.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn::engine {

// Every sequence of options.cu_seqlens_q / _k on its rows of q, k, v, out and lse (the mask
// and score bias cut to the sequence), at positions local to it; options validated against
// shape. Stats are summed over the sequences.
template <class Q, class KV>
AttentionStats run_packed_sequences(const AttentionShape& shape, const AttentionOptions& options,
                                    const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                    const HeadsView<const KV>& v, const HeadsView<float>& out,
                                    const TensorView<float, 3>& lse);

}  // namespace longattn::engine
