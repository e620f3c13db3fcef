#include "engine/attention_validation.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "longattn/error.hpp"

namespace longattn::engine {
namespace {

constexpr const char* kDimNames[4] = {"batch", "heads", "tokens", "features"};

[[noreturn]] void fail(const std::string& what) { throw Error("attention: " + what); }

struct ByteRange {
  std::uintptr_t first = 0, last = 0;  // inclusive
  bool overlaps(const ByteRange& o) const { return first <= o.last && o.first <= last; }
};

// Checks shape and strides of a view, and returns the bytes it spans.
template <class T, int Rank>
ByteRange check_view(const TensorView<T, Rank>& view, const char* name) {
  std::int64_t max_offset = 0;
  bool empty = false;
  for (int i = 0; i < Rank; ++i) {
    const std::string dim = std::string(name) + ".shape[" + std::to_string(i) + "]";
    if (view.shape[i] < 0) fail(dim + ": expected >= 0, got " + std::to_string(view.shape[i]));
    if (view.strides[i] < 0) {
      fail(std::string(name) + ".strides[" + std::to_string(i) + "]: expected >= 0, got " +
           std::to_string(view.strides[i]));
    }
    if (view.shape[i] == 0) empty = true;
    std::int64_t span = 0;
    if (view.shape[i] > 0 &&
        (__builtin_mul_overflow(view.shape[i] - 1, view.strides[i], &span) ||
         __builtin_add_overflow(max_offset, span, &max_offset))) {
      fail(std::string(name) + ": shape and strides address more than 2^63 elements");
    }
  }
  std::int64_t bytes = 0;
  if (__builtin_mul_overflow(max_offset + 1, static_cast<std::int64_t>(sizeof(T)), &bytes)) {
    fail(std::string(name) + ": extent in bytes overflows");
  }
  if (empty) return {1, 0};  // addresses nothing: overlaps nothing
  if (view.data == nullptr) fail(std::string(name) + ".data: expected a pointer, got null");
  const auto first = reinterpret_cast<std::uintptr_t>(view.data);
  return {first, first + static_cast<std::uintptr_t>(bytes) - 1};
}

// An output must not write one element twice: sorted by stride, each dimension of size > 1
// has to step past everything the smaller strides reach. An empty output writes nothing.
template <class T, int Rank>
void check_no_self_overlap(const TensorView<T, Rank>& view, const char* name) {
  if (std::find(view.shape.begin(), view.shape.end(), 0) != view.shape.end()) return;
  std::vector<int> dims;
  for (int i = 0; i < Rank; ++i) {
    if (view.shape[i] > 1) dims.push_back(i);
  }
  std::sort(dims.begin(), dims.end(),
            [&](int a, int b) { return view.strides[a] < view.strides[b]; });
  std::int64_t reach = 0;  // largest offset reached by the dimensions so far
  for (int i : dims) {
    if (view.strides[i] <= reach) {
      fail(std::string(name) + ".strides[" + std::to_string(i) + "]: expected > " +
           std::to_string(reach) + " so that no element is written twice, got " +
           std::to_string(view.strides[i]));
    }
    reach += (view.shape[i] - 1) * view.strides[i];
  }
}

void expect_dim(std::int64_t actual, std::int64_t expected, const char* name, int dim,
                const char* source) {
  if (actual != expected) {
    fail(std::string(name) + ".shape[" + std::to_string(dim) + "] (" + kDimNames[dim] +
         "): expected " + std::to_string(expected) + " (" + source + "), got " +
         std::to_string(actual));
  }
}

}  // namespace

template <class Q, class KV, class O>
AttentionShape validate_views(const HeadsView<const Q>& q, const HeadsView<const KV>& k, const HeadsView<const KV>& v,
                              const HeadsView<O>& out, const TensorView<float, 3>& lse) {
  const ByteRange q_bytes = check_view(q, "q"), k_bytes = check_view(k, "k"),
                  v_bytes = check_view(v, "v"), out_bytes = check_view(out, "out");

  AttentionShape s{q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3],
                   v.shape[3]};
  if (s.d < 1) fail("q.shape[3] (features): expected >= 1, got " + std::to_string(s.d));
  if (s.dv < 1) fail("v.shape[3] (features): expected >= 1, got " + std::to_string(s.dv));
  if (s.q_heads < 1) fail("q.shape[1] (heads): expected >= 1, got " + std::to_string(s.q_heads));
  if (s.kv_heads < 1) fail("k.shape[1] (heads): expected >= 1, got " + std::to_string(s.kv_heads));
  expect_dim(k.shape[0], s.batch, "k", 0, "q's batch");
  expect_dim(k.shape[3], s.d, "k", 3, "q's features");
  expect_dim(v.shape[0], s.batch, "v", 0, "q's batch");
  expect_dim(v.shape[1], s.kv_heads, "v", 1, "k's heads");
  expect_dim(v.shape[2], s.nk, "v", 2, "k's tokens");
  if (s.q_heads % s.kv_heads != 0) {
    fail("k.shape[1] (heads): expected a divisor of q's " + std::to_string(s.q_heads) +
         " heads (grouped-query attention), got " + std::to_string(s.kv_heads));
  }
  expect_dim(out.shape[0], s.batch, "out", 0, "q's batch");
  expect_dim(out.shape[1], s.q_heads, "out", 1, "q's heads");
  expect_dim(out.shape[2], s.nq, "out", 2, "q's tokens");
  expect_dim(out.shape[3], s.dv, "out", 3, "v's features");
  check_no_self_overlap(out, "out");

  for (const auto& [input, name] : {std::pair{q_bytes, "q"}, {k_bytes, "k"}, {v_bytes, "v"}}) {
    if (out_bytes.overlaps(input)) fail(std::string("out: must not overlap ") + name);
  }
  if (!lse.empty()) {
    const ByteRange lse_bytes = check_view(lse, "lse");
    for (int i = 0; i < 3; ++i) {
      const std::int64_t expected = i == 0 ? s.batch : i == 1 ? s.q_heads : s.nq;
      if (lse.shape[i] != expected) {
        fail("lse.shape[" + std::to_string(i) + "]: expected " + std::to_string(expected) +
             " ([batch, q heads, q tokens]), got " + std::to_string(lse.shape[i]));
      }
    }
    check_no_self_overlap(lse, "lse");
    for (const auto& [other, name] :
         {std::pair{q_bytes, "q"}, {k_bytes, "k"}, {v_bytes, "v"}, {out_bytes, "out"}}) {
      if (lse_bytes.overlaps(other)) fail(std::string("lse: must not overlap ") + name);
    }
  }

  return s;
}

namespace {

// cu_seqlens_q or _k: S + 1 offsets from 0 to `total`, non-decreasing.
void check_offsets(std::span<const std::int64_t> offsets, std::int64_t total, const char* name, const char* tokens) {
  if (offsets.empty()) fail(std::string(name) + ": expected S + 1 offsets, got none");
  if (offsets.front() != 0) fail(std::string(name) + "[0]: expected 0, got " + std::to_string(offsets.front()));
  for (std::size_t s = 1; s < offsets.size(); ++s) {
    if (offsets[s] < offsets[s - 1]) {
      fail(std::string(name) + "[" + std::to_string(s) + "]: expected non-decreasing offsets, got " +
           std::to_string(offsets[s]) + " after " + std::to_string(offsets[s - 1]));
    }
  }
  if (offsets.back() != total) {
    fail(std::string(name) + "[" + std::to_string(offsets.size() - 1) + "]: expected " + std::to_string(total) +
         " (" + tokens + "), got " + std::to_string(offsets.back()));
  }
}

// Soft-capping, sinks and sink keys.
void validate_long_context(const AttentionShape& s, const AttentionOptions& options) {
  const bool linear = options.normalizer == Normalizer::linear;
  if (options.softcap) {
    if (!(std::isfinite(*options.softcap) && *options.softcap > 0)) {
      fail("softcap: expected a finite number > 0, got " + std::to_string(*options.softcap));
    }
    if (linear) fail("softcap: linear attention has no scores to cap");
  }
  if (!options.sinks.empty()) {
    if (static_cast<std::int64_t>(options.sinks.size()) != s.q_heads) {
      fail("sinks: expected " + std::to_string(s.q_heads) + " logits (one per query head), got " +
           std::to_string(options.sinks.size()));
    }
    if (options.normalizer != Normalizer::softmax) fail("sinks: join a softmax's denominator; softmax only");
    for (std::size_t h = 0; h < options.sinks.size(); ++h) {
      if (std::isnan(options.sinks[h])) fail("sinks[" + std::to_string(h) + "]: expected a number, got NaN");
    }
  }
  if (options.sink_keys < 0) fail("sink_keys: expected >= 0, got " + std::to_string(options.sink_keys));
  if (options.sink_keys > 0 && linear) fail("sink_keys: linear attention has no window to extend");
}

// int8 scores: smoothing the keys shifts each row's scores by a constant, which softmax alone
// ignores and soft-capping would not.
void validate_qk_precision(const AttentionOptions& options) {
  if (options.qk_precision != QkPrecision::int8) return;
  if (options.normalizer != Normalizer::softmax) {
    fail("qk_precision: int8 scores are shifted by the mean key's score, which only softmax ignores; got " +
         to_string(options.normalizer));
  }
  if (options.softcap) fail("qk_precision: int8 scores are shifted by the mean key's score, which softcap would cap");
  if (options.additive.enabled()) fail("qk_precision: additive scores have no q·k to quantize");
}

// Packed sequences: offsets that cover q and k, in one batch, with no per-batch rule.
void validate_packed(const AttentionShape& s, const AttentionOptions& options) {
  const auto &cu_q = options.cu_seqlens_q, &cu_k = options.cu_seqlens_k;
  if (cu_q.empty() && cu_k.empty()) return;
  if (cu_q.size() != cu_k.size()) {
    fail("cu_seqlens_k: expected as many offsets as cu_seqlens_q (" + std::to_string(cu_q.size()) + "), got " +
         std::to_string(cu_k.size()));
  }
  check_offsets(cu_q, s.nq, "cu_seqlens_q", "q's tokens");
  check_offsets(cu_k, s.nk, "cu_seqlens_k", "k's tokens");
  if (s.batch != 1) fail("cu_seqlens_q: packed sequences lie in one batch, got batch " + std::to_string(s.batch));
  if (!options.key_lengths.empty() || options.block_sparse.enabled()) {
    fail("cu_seqlens_q: packed sequences take no key_lengths or block-sparse layout (each sequence's keys are its own)");
  }
}

}  // namespace

void validate_options(const AttentionShape& s, const AttentionOptions& options, bool with_lse) {
  if (!options.key_lengths.empty()) {
    if (static_cast<std::int64_t>(options.key_lengths.size()) != s.batch) {
      fail("key_lengths: expected one length per batch (" + std::to_string(s.batch) + "), got " +
           std::to_string(options.key_lengths.size()));
    }
    for (std::size_t b = 0; b < options.key_lengths.size(); ++b) {
      const std::int64_t len = options.key_lengths[b];
      if (len < 0 || len > s.nk) {
        fail("key_lengths[" + std::to_string(b) + "]: expected 0 ... " + std::to_string(s.nk) +
             " (k's tokens), got " + std::to_string(len));
      }
    }
  }
  if (!options.mask.empty() || options.mask.shape[0] != 0 || options.mask.shape[1] != 0) {
    check_view(options.mask, "mask");
    if (options.mask.shape[0] != s.nq || options.mask.shape[1] != s.nk) {
      fail("mask.shape: expected [" + std::to_string(s.nq) + ", " + std::to_string(s.nk) +
           "] ([q tokens, k tokens]), got [" + std::to_string(options.mask.shape[0]) + ", " +
           std::to_string(options.mask.shape[1]) + "]");
    }
  }
  const BlockSparseLayout& layout = options.block_sparse;
  if (layout.enabled() || layout.block_k != 0 || !layout.visible.empty()) {
    if (layout.block_q < 1 || layout.block_k < 1) {
      fail("block_sparse: expected block_q and block_k >= 1, got " + std::to_string(layout.block_q) +
           " and " + std::to_string(layout.block_k));
    }
    const std::int64_t q_blocks = (s.nq + layout.block_q - 1) / layout.block_q;
    const std::int64_t k_blocks = (s.nk + layout.block_k - 1) / layout.block_k;
    for (std::size_t t = 0; t < layout.visible.size(); ++t) {
      const auto [qb, kb] = layout.visible[t];
      if (qb < 0 || qb >= q_blocks || kb < 0 || kb >= k_blocks) {
        fail("block_sparse.visible[" + std::to_string(t) + "]: expected a tile in [0, " +
             std::to_string(q_blocks) + ") x [0, " + std::to_string(k_blocks) + "), got (" +
             std::to_string(qb) + ", " + std::to_string(kb) + ")");
      }
    }
  }
  if (options.window.left < -1 || options.window.right < -1) {
    fail("window: expected left and right >= -1 (-1 = unbounded), got (" +
         std::to_string(options.window.left) + ", " + std::to_string(options.window.right) + ")");
  }
  if (with_lse && options.normalizer != Normalizer::softmax) {
    fail("lse: defined for the softmax normalizer only, got " + to_string(options.normalizer));
  }
  if (options.sigmoid_bias && !std::isfinite(*options.sigmoid_bias)) {
    fail("sigmoid_bias: expected a finite number, got " + std::to_string(*options.sigmoid_bias));
  }
  if (options.normalizer == Normalizer::linear) {
    if (!(options.window == Window::full() || options.window == Window::causal())) {
      fail("window: linear attention runs full (-1, -1) or causal (-1, 0), got (" +
           std::to_string(options.window.left) + ", " + std::to_string(options.window.right) + ")");
    }
    if (!options.mask.empty() || options.block_sparse.enabled()) {
      fail("normalizer: linear attention has no scores to mask; an explicit mask or block-sparse layout needs "
           "softmax, sigmoid or relu");
    }
  }
  if (const AdditiveScoring& a = options.additive; a.enabled() || !a.wq.empty() || !a.wk.empty()) {
    const std::int64_t da = static_cast<std::int64_t>(a.w.size());
    if (da < 1) fail("additive.w: expected Da >= 1 weights, got none");
    for (const auto& [view, name] : {std::pair{a.wq, "additive.wq"}, {a.wk, "additive.wk"}}) {
      check_view(view, name);
      if (view.shape[0] != da || view.shape[1] != s.d) {
        fail(std::string(name) + ".shape: expected [" + std::to_string(da) + ", " + std::to_string(s.d) +
             "] ([Da, D]), got [" + std::to_string(view.shape[0]) + ", " + std::to_string(view.shape[1]) + "]");
      }
    }
    if (options.normalizer == Normalizer::linear) fail("additive: linear attention has no scores to replace");
  }
  if (options.rope.enabled()) {
    if (s.d % 2 != 0) fail("rope: rotates pairs of features, expected an even D, got " + std::to_string(s.d));
    if (!(std::isfinite(options.rope.base) && options.rope.base > 0)) {
      fail("rope.base: expected a finite number > 0, got " + std::to_string(options.rope.base));
    }
    if (options.additive.enabled()) fail("rope: rotates q·k dot products; additive scores have none");
  }
  if (const auto& table = options.relative_bias; !table.empty() || table.shape[0] != 0 || table.shape[1] != 0) {
    check_view(table, "relative_bias");
    if (table.shape[0] != s.q_heads || table.shape[1] < 1 || table.shape[1] % 2 == 0) {
      fail("relative_bias.shape: expected [" + std::to_string(s.q_heads) + ", 2K+1] ([q heads, odd offsets]), got [" +
           std::to_string(table.shape[0]) + ", " + std::to_string(table.shape[1]) + "]");
    }
  }
  if (const auto& bias = options.score_bias;
      !bias.empty() || std::any_of(bias.shape.begin(), bias.shape.end(), [](std::int64_t x) { return x != 0; })) {
    check_view(bias, "score_bias");
    const std::array<std::int64_t, 4> expected = {s.batch, s.q_heads, s.nq, s.nk};
    if (bias.shape != expected) {
      fail("score_bias.shape: expected [" + std::to_string(s.batch) + ", " + std::to_string(s.q_heads) + ", " +
           std::to_string(s.nq) + ", " + std::to_string(s.nk) + "] ([batch, q heads, q tokens, k tokens]; stride 0 "
           "to share a dimension), got [" + std::to_string(bias.shape[0]) + ", " + std::to_string(bias.shape[1]) +
           ", " + std::to_string(bias.shape[2]) + ", " + std::to_string(bias.shape[3]) + "]");
    }
  }
  if (options.normalizer == Normalizer::linear && (options.rope.enabled() || options.alibi ||
                                                   !options.relative_bias.empty() || !options.score_bias.empty())) {
    fail("normalizer: linear attention has no scores for RoPE, ALiBi, a relative bias or a score bias; use softmax, "
         "sigmoid or relu");
  }
  validate_long_context(s, options);
  validate_packed(s, options);
  validate_qk_precision(options);
  if (options.scale && !std::isfinite(*options.scale)) {
    fail("scale: expected a finite number, got " + std::to_string(*options.scale));
  }
  if (options.threads < 0) {
    fail("threads: expected >= 0 (0 = all), got " + std::to_string(options.threads));
  }
  // Positions far enough from overflow that any difference and sum of them stays exact.
  constexpr std::int64_t kMostPosition = std::int64_t{1} << 60;
  const Positions& p = options.positions;
  for (const auto& [value, name] : {std::pair{p.query_start.value_or(0), "positions.query_start"},
                                    std::pair{p.key_start, "positions.key_start"}}) {
    if (value < -kMostPosition || value > kMostPosition) {
      fail(std::string(name) + ": expected within ±2^60, got " + std::to_string(value));
    }
  }
}

template <class Q, class KV>
AttentionShape validate_attention(const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                  const HeadsView<const KV>& v, const HeadsView<float>& out,
                                  const TensorView<float, 3>& lse, const AttentionOptions& options) {
  const AttentionShape shape = validate_views(q, k, v, out, lse);
  validate_options(shape, options, !lse.empty());
  return shape;
}

#define LONGATTN_INSTANTIATE_VALIDATION(Q, KV)                                                                    \
  template AttentionShape validate_views(const HeadsView<const Q>&, const HeadsView<const KV>&,                \
                                         const HeadsView<const KV>&, const HeadsView<float>&,                   \
                                         const TensorView<float, 3>&);                                          \
  template AttentionShape validate_views(const HeadsView<const Q>&, const HeadsView<const KV>&,                \
                                         const HeadsView<const KV>&, const HeadsView<bf16>&,                    \
                                         const TensorView<float, 3>&);                                          \
  template AttentionShape validate_attention(const HeadsView<const Q>&, const HeadsView<const KV>&,            \
                                             const HeadsView<const KV>&, const HeadsView<float>&,               \
                                             const TensorView<float, 3>&, const AttentionOptions&);
LONGATTN_INSTANTIATE_VALIDATION(float, float)
LONGATTN_INSTANTIATE_VALIDATION(bf16, bf16)
LONGATTN_INSTANTIATE_VALIDATION(float, bf16)

}  // namespace longattn::engine
