// Linear attention (Katharopoulos et al., "Transformers are RNNs"): φ = elu + 1 features of
// queries and keys, a D × Dv state instead of scores, O(n·D·Dv) time and O(D·Dv) state.
#pragma once

#include <span>
#include <vector>

#include "engine/attention_validation.hpp"
#include "longattn/options.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn::engine {

// Full window: o_i = φ(q_i)ᵀ S / (φ(q_i)ᵀ z) over every valid key. Causal: the recurrent form,
// key j visible to query i when j <= i + Nk - Nq, computed chunk-parallel where the heads
// alone are too few for the threads (per-chunk sums, a prefix over chunks, then each chunk
// of queries from its prefix state); the chunks follow from the shape, so the result does
// not depend on the thread count. Every product runs on the flash kernels' register blocks:
// blocks of keys into the state, blocks of queries against it, and in a causal block the
// queries' masked products with the block's own new keys (Φ(Q) Φ(K)ᵀ, then times V).
// Q, KV: the element types of q and of k and v (float or bf16, read as fp32).
template <class Q, class KV>
AttentionStats run_linear_attention(const AttentionShape& shape, const AttentionOptions& options,
                                    const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                    const HeadsView<const KV>& v, const HeadsView<float>& out,
                                    std::span<const float> prior = {});

// The state of the keys each batch lets through (key_lengths), per (batch, kv head): S [D, Dv]
// then z [D]. Summed over the parts of a sequence that lie elsewhere (ring attention), it is
// the `prior` above: a state every query adds to its own keys' (empty: none).
template <class KV>
std::vector<float> linear_key_state(const AttentionShape& shape, const AttentionOptions& options,
                                    const HeadsView<const KV>& k, const HeadsView<const KV>& v);

}  // namespace longattn::engine
