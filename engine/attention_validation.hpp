// Checks every argument of attention() before anything is written (DESIGN.md §5).
#pragma once

#include <cstdint>

#include "longattn/bf16.hpp"
#include "longattn/options.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn::engine {

// The sizes of one call, taken from validated views.
struct AttentionShape {
  std::int64_t batch, q_heads, kv_heads, nq, nk, d, dv;
  std::int64_t group() const { return q_heads / kv_heads; }  // query heads per kv head
};

// Each throws longattn::Error naming the argument, the expected and the actual value. Q, KV:
// the element types of q and of k and v (float or bf16).

// The views alone: shapes that agree, strides, no overlap of out or lse with anything.
template <class Q, class KV, class O>
AttentionShape validate_views(const HeadsView<const Q>& q, const HeadsView<const KV>& k, const HeadsView<const KV>& v,
                              const HeadsView<O>& out, const TensorView<float, 3>& lse);  // O: float or bf16

// The options against the sizes they apply to; with_lse: an lse output is asked for.
void validate_options(const AttentionShape& shape, const AttentionOptions& options, bool with_lse);

// Both, views first.
template <class Q, class KV>
AttentionShape validate_attention(const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                  const HeadsView<const KV>& v, const HeadsView<float>& out,
                                  const TensorView<float, 3>& lse, const AttentionOptions& options);

}  // namespace longattn::engine
