#include "engine/packed_sequences.hpp"

#include <oneapi/tbb/parallel_for.h>

#include <optional>
#include <vector>

#include "engine/flash_attention.hpp"
#include "engine/linear_attention.hpp"
#include "engine/thread_arena.hpp"

namespace longattn::engine {

namespace {

// Sequence s of the packed batch on its own rows: a problem of its own, at positions local to
// it. A sequence without queries runs nothing (no stats).
template <class Q, class KV>
std::optional<AttentionStats> run_sequence(std::size_t s, const AttentionShape& shape, const AttentionOptions& options,
                            const HeadsView<const Q>& q, const HeadsView<const KV>& k, const HeadsView<const KV>& v,
                            const HeadsView<float>& out, const TensorView<float, 3>& lse) {
  const std::int64_t q0 = options.cu_seqlens_q[s], k0 = options.cu_seqlens_k[s];
  const std::int64_t nq = options.cu_seqlens_q[s + 1] - q0, nk = options.cu_seqlens_k[s + 1] - k0;
  if (nq == 0) return std::nullopt;
  AttentionOptions one = options;
  one.cu_seqlens_q = {}, one.cu_seqlens_k = {};
  one.threads = 0;  // the packed call's threads, shared by its sequences
  one.mask = narrow(narrow(options.mask, 0, q0, nq), 1, k0, nk);
  one.score_bias = narrow(narrow(options.score_bias, 2, q0, nq), 3, k0, nk);
  AttentionShape part = shape;
  part.nq = nq, part.nk = nk;
  const auto qs = narrow(q, 2, q0, nq);
  const auto ks = narrow(k, 2, k0, nk), vs = narrow(v, 2, k0, nk);
  const auto os = narrow(out, 2, q0, nq);
  if (options.normalizer == Normalizer::linear) return run_linear_attention(part, one, qs, ks, vs, os);
  return run_flash_attention(make_flash_plan(part, one), qs, ks, vs, os, narrow(lse, 2, q0, nq));
}

}  // namespace

// The sequences run side by side on the call's threads, each one's own work split further as
// a call of its own would split it: short sequences have too little work to share the threads
// one at a time. Each sequence's bits depend on its own rows alone, the same for any thread
// count.
template <class Q, class KV>
AttentionStats run_packed_sequences(const AttentionShape& shape, const AttentionOptions& options,
                                    const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                    const HeadsView<const KV>& v, const HeadsView<float>& out,
                                    const TensorView<float, 3>& lse) {
  const std::size_t sequences = options.cu_seqlens_q.size() - 1;
  std::vector<std::optional<AttentionStats>> runs(sequences);
  run_on_threads(options.threads, [&] {
    tbb::parallel_for(std::size_t{0}, sequences, [&](std::size_t s) {
      runs[s] = run_sequence(s, shape, options, q, k, v, out, lse);
    });
  });
  AttentionStats total;
  for (const std::optional<AttentionStats>& run : runs) {
    if (run) add_run(total, *run);
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
