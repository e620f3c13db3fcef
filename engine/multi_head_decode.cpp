// The multi-head layer serving from a KvCache: the new tokens' Q, K and V made as forward
// makes them, their keys and values appended to the cache, and their queries attending over
// the cache with cached_attention; then Wo as in forward.
#include <algorithm>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/input_elements.hpp"
#include "engine/multi_head_layer.hpp"
#include "longattn/error.hpp"
#include "longattn/kv_cache.hpp"

namespace longattn {
namespace {

[[noreturn]] void fail(const std::string& what) { throw Error("multi-head attention: decode: " + what); }

// Whether every element of a head-major [B, H, N, D] view (features contiguous) is finite.
template <class T>
bool all_finite(const simd::KernelTable& kernels, const HeadsView<const T>& t) {
  for (std::int64_t b = 0; b < t.shape[0]; ++b) {
    for (std::int64_t h = 0; h < t.shape[1]; ++h) {
      const T* rows = t.data + b * t.strides[0] + h * t.strides[1];
      bool finite;
      if constexpr (std::is_same_v<T, float>) {
        finite = kernels.elementwise.all_finite(rows, t.shape[2], t.strides[2], t.shape[3]);
      } else {
        finite = kernels.elementwise.all_finite_bf16(rows, t.shape[2], t.strides[2], t.shape[3]);
      }
      if (!finite) return false;
    }
  }
  return true;
}

// The new tokens' keys and values (T: fp32 or bf16, as the layer made them) appended to each
// sequence, then their queries against the cache into o.
template <class T>
AttentionStats append_and_attend(const std::array<HeadsView<const T>, 3>& qkv, KvCache& cache, std::int64_t layer,
                                 std::span<const SequenceId> sequences, const HeadsView<float>& o,
                                 AttentionOptions options) {
  const auto& [q, k, v] = qkv;
  const simd::KernelTable& kernels = simd::kernels_for(options.isa);
  if (cache.config().type == CacheType::int8 && !(all_finite(kernels, k) && all_finite(kernels, v))) {
    fail("x: its keys or values hold a NaN or inf, which an int8 cache cannot quantize");  // before any append
  }
  std::vector<float> widened;  // cached_attention takes fp32 queries
  HeadsView<const float> q32;
  if constexpr (std::is_same_v<T, float>) {
    q32 = q;
  } else {
    const std::int64_t S = q.shape[0], H = q.shape[1], n = q.shape[2], D = q.shape[3];
    widened.resize(static_cast<std::size_t>(S * H * n * D));
    for (std::int64_t row = 0; row < S * H * n; ++row) {  // [S][H][n] rows of D features
      const T* from = q.data + row / (H * n) * q.strides[0] + row / n % H * q.strides[1] + row % n * q.strides[2];
      engine::widen(kernels, from, D, widened.data() + row * D);
    }
    q32 = bhnd<const float>(widened.data(), S, H, n, D);
  }
  for (std::size_t s = 0; s < sequences.size(); ++s) {
    const auto row = static_cast<std::int64_t>(s);
    cache.append(sequences[s], layer, narrow(k, 0, row, 1), narrow(v, 0, row, 1));
  }
  options.rope = {};  // the cache's: keys turned as appended, queries by cached_attention
  return cached_attention(cache, layer, sequences, q32, o, options);
}

}  // namespace

// Whether the layer can decode from this cache: its heads and features, its RoPE, a causal
// window, scores that read keys, no positions of its own: all that cached_attention would
// refuse only after the keys were appended.
void MultiHeadSelfAttention::Impl::check_serves_from(const KvCache& cache, std::int64_t layer) const {
  const KvCacheConfig& c = cache.config();
  if (c.kv_heads != Hkv || c.d != D || (c.dv != 0 && c.dv != D)) {
    fail("cache: expected kv_heads = " + std::to_string(Hkv) + " and d = dv = " + std::to_string(D) + " (the layer's)");
  }
  if (c.rope.pairing != config.attention.rope.pairing || (c.rope.enabled() && c.rope.base != config.attention.rope.base)) {
    fail("cache: its rope must be the layer's (config.attention.rope): it turns keys as appended");
  }
  if (layer < 0 || layer >= c.layers) fail("layer: expected 0 … " + std::to_string(c.layers - 1));
  const AttentionOptions& a = config.attention;
  if (a.window.right != 0) fail("the layer must be causal (a window (L, 0) or Window::causal()) to decode");
  if (a.additive.enabled() || a.normalizer == Normalizer::linear) {
    fail("additive scores and linear attention do not read a cache");
  }
  if (a.positions.query_start.has_value() || a.positions.key_start != 0) {
    fail("attention.positions: a cached sequence's tokens sit at their own positions");
  }
}

// What a decoding step needs of its arguments, checked before anything is written; returns
// each new token's position in its sequence, sequence by sequence.
std::vector<std::int64_t> MultiHeadSelfAttention::Impl::check_decode(const TensorView<const float, 3>& x,
                                                                     const TensorView<float, 3>& y,
                                                                     const KvCache& cache, std::int64_t layer,
                                                                     std::span<const SequenceId> sequences) const {
  engine::check_layer_views(x, y, E);
  const std::int64_t S = x.shape[0], T = x.shape[1];
  if (static_cast<std::int64_t>(sequences.size()) != S) {
    fail("sequences: expected one per row of x (" + std::to_string(S) + "), got " + std::to_string(sequences.size()));
  }
  check_serves_from(cache, layer);
  std::set<SequenceId> seen;
  std::vector<std::int64_t> positions;
  for (SequenceId id : sequences) {
    if (!cache.contains(id)) fail("sequences: " + std::to_string(id) + " is not in the cache");
    if (!seen.insert(id).second) fail("sequences: " + std::to_string(id) + " appears twice");
    const std::int64_t length = cache.length(id, layer);
    if (config.positions == AbsolutePositions::learned && length + T > max_len) {
      fail("x: sequence " + std::to_string(id) + " would reach position " + std::to_string(length + T - 1) +
           ", past the learned position table's " + std::to_string(max_len) + " rows");
    }
    for (std::int64_t t = 0; t < T; ++t) positions.push_back(length + t);
  }
  return positions;
}

MultiHeadStats MultiHeadSelfAttention::decode(TensorView<const float, 3> x, TensorView<float, 3> y, KvCache& cache,
                                              std::int64_t layer, std::span<const SequenceId> sequences) const {
  Impl& m = *impl_;
  const std::vector<std::int64_t> row_positions = m.check_decode(x, y, cache, layer, sequences);
  const Impl::Borrowed borrowed(m);
  Impl::Call call{*borrowed.buffers, dnnl::stream(m.engine)};
  const std::int64_t S = x.shape[0], T = x.shape[1], Hq = m.Hq, D = m.D;
  if (const std::string problem = m.reserve(call.buffers, S, T); !problem.empty()) throw Error(problem);
  const Impl::PositionRows positions = m.position_rows(row_positions);

  MultiHeadStats stats;
  const engine::OmpThreads omp_threads(m.config.attention.threads);
  auto start = std::chrono::steady_clock::now();
  m.project_inputs(call, x, positions.rows, row_positions);
  stats.projection_seconds = engine::seconds_since(start);

  const bool in_y = Hq * D <= m.E;
  const HeadsView<float> o = in_y ? HeadsView<float>{y.data, {S, Hq, T, D}, {y.strides[0], D, y.strides[1], 1}}
                                  : bnhd(call.buffers.heads_out.data(), S, T, Hq, D);
  start = std::chrono::steady_clock::now();
  stats.attention = m.in_bf16 ? append_and_attend(m.qkv_views<bf16>(call, S, T), cache, layer, sequences, o,
                                                  m.config.attention)
                              : append_and_attend(m.qkv_views<float>(call, S, T), cache, layer, sequences, o,
                                                  m.config.attention);
  stats.attention_seconds = engine::seconds_since(start);

  start = std::chrono::steady_clock::now();
  m.project_outputs(call, y, in_y);
  stats.output_seconds = engine::seconds_since(start);
  m.finish_stats(stats, call, S * T);
  return stats;
}

}  // namespace longattn
