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

// Throws longattn::Error naming the argument, the expected and the actual value. T: float or
// bf16.
template <class T>
AttentionShape validate_attention(const HeadsView<const T>& q, const HeadsView<const T>& k,
                                  const HeadsView<const T>& v, const HeadsView<float>& out,
                                  const TensorView<float, 3>& lse, const AttentionOptions& options);

}  // namespace longattn::engine
