#include "engine/packed_sequences.hpp"

#include "engine/flash_attention.hpp"
#include "engine/linear_attention.hpp"

namespace longattn::engine {

template <class Q, class KV>
AttentionStats run_packed_sequences(const AttentionShape& shape, const AttentionOptions& options,
                                    const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                    const HeadsView<const KV>& v, const HeadsView<float>& out,
                                    const TensorView<float, 3>& lse) {
  AttentionStats total;
  AttentionOptions one = options;
  one.cu_seqlens_q = {}, one.cu_seqlens_k = {};
  for (std::size_t s = 0; s + 1 < options.cu_seqlens_q.size(); ++s) {
    const std::int64_t q0 = options.cu_seqlens_q[s], k0 = options.cu_seqlens_k[s];
    const std::int64_t nq = options.cu_seqlens_q[s + 1] - q0, nk = options.cu_seqlens_k[s + 1] - k0;
    if (nq == 0) continue;
    AttentionShape part = shape;
    part.nq = nq, part.nk = nk;
    one.mask = narrow(narrow(options.mask, 0, q0, nq), 1, k0, nk);
    one.score_bias = narrow(narrow(options.score_bias, 2, q0, nq), 3, k0, nk);
    const auto qs = narrow(q, 2, q0, nq);
    const auto ks = narrow(k, 2, k0, nk), vs = narrow(v, 2, k0, nk);
    const auto os = narrow(out, 2, q0, nq);
    if (options.normalizer == Normalizer::linear) {
      add_run(total, run_linear_attention(part, one, qs, ks, vs, os));
    } else {
      add_run(total, run_flash_attention(make_flash_plan(part, one), qs, ks, vs, os, narrow(lse, 2, q0, nq)));
    }
  }
  return total;
}

#define LONGATTN_INSTANTIATE_PACKED(Q, KV)                                                                   \
  template AttentionStats run_packed_sequences(const AttentionShape&, const AttentionOptions&,            \
                                               const HeadsView<const Q>&, const HeadsView<const KV>&,      \
                                               const HeadsView<const KV>&, const HeadsView<float>&,        \
                                               const TensorView<float, 3>&);
LONGATTN_INSTANTIATE_PACKED(float, float)
LONGATTN_INSTANTIATE_PACKED(bf16, bf16)
LONGATTN_INSTANTIATE_PACKED(float, bf16)

}  // namespace longattn::engine
