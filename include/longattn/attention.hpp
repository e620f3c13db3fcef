// The kernel entry point: exact attention with streaming softmax, O(n·D) memory.
#pragma once

#include "longattn/bf16.hpp"
#include "longattn/error.hpp"
#include "longattn/export.hpp"
#include "longattn/options.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn {

// out[b, h, i] = Σ_j softmax_j(scale · q[b,h,i]·k[b,g,j]) v[b,g,j] over the keys visible to
// query i, with g = h / (Hq / Hkv) (grouped-query heads).
//
//   q   [B, Hq,  Nq, D]      k [B, Hkv, Nk, D]      v [B, Hkv, Nk, Dv]
//   out [B, Hq,  Nq, Dv]     lse (optional) [B, Hq, Nq]: natural log of the softmax
//                            denominator, -inf for a query that sees no key.
//
// Query i sits at position i + Nk - Nq (bottom-right alignment). A query with no visible key
// gets a zero row. NaN and ±inf follow PyTorch's arithmetic (README "Non-finite values"): a
// NaN reaches the rows that see it, never a row that does not. Arguments are validated before
// anything is written; a violation throws longattn::Error.
LONGATTN_API AttentionStats attention(HeadsView<const float> q, HeadsView<const float> k,
                         HeadsView<const float> v, HeadsView<float> out,
                         const AttentionOptions& options = {},
                         TensorView<float, 3> lse = {});

// The same on bf16 q, k and v (every option, layout and path of the fp32 call), with an fp32
// output. Where the CPU has AVX512-BF16, bf16 pairs are multiplied by vdpbf16ps and summed in
// fp32, the probabilities rounded to bf16 for P·V (options.bf16_products = native, the
// default; within the bf16 tolerance, 2e-2); elsewhere, and with `widened`, the engine widens
// the inputs to fp32 as it copies or packs them and computes in fp32: the fp32 call's result
// on the widened inputs, within fp32 tolerances. stats.bf16_products says which ran.
LONGATTN_API AttentionStats attention(HeadsView<const bf16> q, HeadsView<const bf16> k,
                                      HeadsView<const bf16> v, HeadsView<float> out,
                                      const AttentionOptions& options = {},
                                      TensorView<float, 3> lse = {});

// fp32 queries against bf16 keys and values (a bf16 key-value cache): the same, q read as the
// fp32 call reads it.
LONGATTN_API AttentionStats attention(HeadsView<const float> q, HeadsView<const bf16> k,
                                      HeadsView<const bf16> v, HeadsView<float> out,
                                      const AttentionOptions& options = {},
                                      TensorView<float, 3> lse = {});

// The same three with a bf16 output: the fp32 result, rounded to the nearest bf16 (ties to
// even) as it is written. The engine computes into an fp32 copy of out's shape first (in
// stats.scratch_bytes), so out is written once, whole, after everything else succeeded.
LONGATTN_API AttentionStats attention(HeadsView<const float> q, HeadsView<const float> k,
                                      HeadsView<const float> v, HeadsView<bf16> out,
                                      const AttentionOptions& options = {},
                                      TensorView<float, 3> lse = {});
LONGATTN_API AttentionStats attention(HeadsView<const bf16> q, HeadsView<const bf16> k,
                                      HeadsView<const bf16> v, HeadsView<bf16> out,
                                      const AttentionOptions& options = {},
                                      TensorView<float, 3> lse = {});
LONGATTN_API AttentionStats attention(HeadsView<const float> q, HeadsView<const bf16> k,
                                      HeadsView<const bf16> v, HeadsView<bf16> out,
                                      const AttentionOptions& options = {},
                                      TensorView<float, 3> lse = {});

// Frees the scratch the engine keeps between calls and returns the bytes freed. Calls keep the
// largest buffers of packed keys and values they used (two at most, each within the 32 MiB
// budget), so that attention in a loop reuses their huge pages instead of faulting in fresh
// ones; an application that is done with attention for a while gives them back here. A call
// in flight keeps what it holds; the next call allocates again.
LONGATTN_API std::int64_t release_scratch();

// Visible (query, key) pairs of one head under `window`, the count DESIGN.md §4 multiplies.
LONGATTN_API std::int64_t visible_pairs(std::int64_t nq, std::int64_t nk, Window window);

}  // namespace longattn
