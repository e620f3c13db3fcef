// The baseline: attention as a user of our dependencies would write it without longattn.
// Per (batch, head): S = scale · Q Kᵀ with oneDNN matmul, the window and block-sparse masks
// written into S as -inf, oneDNN's softmax primitive, O = S V with oneDNN matmul. S is the
// full Nq × Nk matrix, whatever the masks hide.
#pragma once

#include <cstdint>
#include <memory>

#include "longattn/options.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn::bench {

class OneDnnAttention {
 public:
  // Primitives are created once per shape; run() may be called many times.
  // options: scale, window and block_sparse are honoured (no key lengths or explicit mask).
  OneDnnAttention(std::int64_t nq, std::int64_t nk, std::int64_t d, std::int64_t dv,
                  const AttentionOptions& options, int threads);
  ~OneDnnAttention();

  // q, k, v, out contiguous [B, H, N, D] (the layout the primitives were created for).
  void run(const HeadsView<const float>& q, const HeadsView<const float>& k,
           const HeadsView<const float>& v, const HeadsView<float>& out);

  // The materialized score matrix: the memory longattn never needs.
  std::int64_t scratch_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longattn::bench
