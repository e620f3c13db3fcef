#include "engine/linear_attention.hpp"

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/aligned_buffer.hpp"
#include "engine/input_elements.hpp"
#include "engine/thread_arena.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::engine {
namespace {

// Query chunks per head: enough to keep every thread busy, few enough that their D × Dv
// prefix states stay small (64 × 16 KiB at D = Dv = 64). Fixed by the shape alone.
constexpr std::int64_t kMaxChunks = 64;

// φ(x) = elu(x) + 1: x + 1 above zero, e^x below. Always positive.
template <class T>
void feature_map(const T* x, std::int64_t stride, std::int64_t d, float* phi) {
  for (std::int64_t i = 0; i < d; ++i) {
    const float value = to_float(x[i * stride]);
    phi[i] = value > 0 ? value + 1.0f : std::exp(value);
  }
}

template <class Q, class KV>
class LinearRunner {
 public:
  LinearRunner(const AttentionShape& s, const AttentionOptions& options, const HeadsView<const Q>& q,
               const HeadsView<const KV>& k, const HeadsView<const KV>& v, const HeadsView<float>& out,
               std::span<const float> prior)
      : s_(s), options_(options), q_(q), k_(k), v_(v), out_(out), prior_(prior), kern_(simd::kernels_for(options.isa)),
        causal_(options.window == Window::causal()),
        W_((s.dv + kern_.lanes - 1) / kern_.lanes * kern_.lanes),
        chunks_(std::clamp<std::int64_t>((s.nq + 255) / 256, 1, kMaxChunks)),
        chunk_rows_((s.nq + chunks_ - 1) / chunks_),
        state_floats_(s.d * W_ + s.d) {}

  // Keys [0, key_length) of head (b, g) as S [D, Dv] then z [D], unpadded.
  void key_state(std::int64_t b, std::int64_t g, float* state) const {
    std::vector<float> padded(state_floats_, 0.0f), phi(s_.d), value(W_, 0.0f);
    add_keys(b, g, 0, key_length(b), padded.data(), phi, value);
    for (std::int64_t i = 0; i < s_.d; ++i) std::copy_n(&padded[i * W_], s_.dv, state + i * s_.dv);
    std::copy_n(&padded[s_.d * W_], s_.d, state + s_.d * s_.dv);
  }

  AttentionStats run() {
    // Per (batch, q head): partial state sums of each chunk's keys, then each chunk's queries.
    AlignedBuffer states(s_.batch * s_.q_heads * (chunks_ + 1) * state_floats_);
    const std::int64_t heads = s_.batch * s_.q_heads;
    tbb::parallel_for(std::int64_t{0}, heads * chunks_, [&](std::int64_t task) {
      sum_keys(task / chunks_, task % chunks_, states.data() + (task / chunks_) * (chunks_ + 1) * state_floats_);
    });
    tbb::parallel_for(std::int64_t{0}, heads, [&](std::int64_t head) {
      // Exclusive prefix over chunks in a fixed order; the full window uses the total.
      float* base = states.data() + head * (chunks_ + 1) * state_floats_;
      std::vector<float> running = prior_state(head), chunk(state_floats_);
      for (std::int64_t t = 0; t <= chunks_; ++t) {
        float* slot = base + t * state_floats_;
        std::copy(slot, slot + state_floats_, chunk.begin());
        std::copy(running.begin(), running.end(), slot);
        if (t < chunks_) for (std::int64_t i = 0; i < state_floats_; ++i) running[i] += chunk[i];
      }
    });
    tbb::parallel_for(std::int64_t{0}, heads * chunks_, [&](std::int64_t task) {
      answer_queries(task / chunks_, task % chunks_, states.data() + (task / chunks_) * (chunks_ + 1) * state_floats_);
    });

    AttentionStats stats;
    std::int64_t keys = 0;
    for (std::int64_t b = 0; b < s_.batch; ++b) {
      keys += key_length(b);
      for (std::int64_t i = 0; i < s_.nq; ++i) stats.visible_pairs += visible_keys(b, i);
    }
    stats.visible_pairs *= s_.q_heads;
    // The work of the recurrence, not of pairs: per key and head one rank-1 update of the
    // D × Dv state, per query one vector-matrix product, 2·D·Dv FLOPs each.
    stats.flops = 2.0 * double(s_.d) * double(s_.dv) * double(s_.q_heads) * double(keys + s_.batch * s_.nq);
    stats.scratch_bytes = states.bytes();
    stats.isa = kern_.isa;
    return stats;
  }

 private:
  std::int64_t key_length(std::int64_t b) const {
    return options_.key_lengths.empty() ? s_.nk : options_.key_lengths[b];
  }
  // Keys query row i may see: j < visible_keys(b, i).
  std::int64_t visible_keys(std::int64_t b, std::int64_t i) const {
    const std::int64_t length = key_length(b);
    return causal_ ? std::clamp<std::int64_t>(i + options_.positions.query_offset(s_.nq, s_.nk) + 1, 0, length) : length;
  }
  // Keys that belong to chunk t's sum: those the previous chunk's last query sees (causal), or
  // an equal share of all keys (full window).
  std::int64_t key_boundary(std::int64_t b, std::int64_t t) const {
    if (!causal_) return std::min(key_length(b), t * ((key_length(b) + chunks_ - 1) / chunks_));
    const std::int64_t first_row = std::min(s_.nq, t * chunk_rows_);
    return first_row == 0 ? 0 : visible_keys(b, first_row - 1);
  }

  // Adds φ(k_j) v_jᵀ and φ(k_j) of keys [from, to) of head (b, g) into state (S then z).
  void add_keys(std::int64_t b, std::int64_t g, std::int64_t from, std::int64_t to, float* state,
                std::vector<float>& phi, std::vector<float>& value) const {
    for (std::int64_t j = from; j < to; ++j) {
      feature_map(k_.data + b * k_.strides[0] + g * k_.strides[1] + j * k_.strides[2], k_.strides[3], s_.d, phi.data());
      widen_row(kern_, v_.data + b * v_.strides[0] + g * v_.strides[1] + j * v_.strides[2], v_.strides[3], s_.dv,
                value.data());
      kern_.linear.rank1_update(state, s_.d, W_, phi.data(), value.data());
      for (std::int64_t i = 0; i < s_.d; ++i) state[s_.d * W_ + i] += phi[i];
    }
  }

  void sum_keys(std::int64_t head, std::int64_t t, float* states) const {
    const std::int64_t b = head / s_.q_heads, g = head % s_.q_heads / s_.group();
    float* slot = states + t * state_floats_;
    std::fill(slot, slot + state_floats_, 0.0f);
    std::vector<float> phi(s_.d), value(W_, 0.0f);
    add_keys(b, g, key_boundary(b, t), key_boundary(b, t + 1), slot, phi, value);
  }

  void answer_queries(std::int64_t head, std::int64_t t, const float* states) const {
    const std::int64_t b = head / s_.q_heads, h = head % s_.q_heads, g = h / s_.group();
    const std::int64_t row0 = t * chunk_rows_, row1 = std::min(s_.nq, row0 + chunk_rows_);
    if (row0 >= row1) return;
    // Full window: every query reads the total, which sits after the last chunk's prefix.
    std::vector<float> state(states + (causal_ ? t : chunks_) * state_floats_,
                             states + ((causal_ ? t : chunks_) + 1) * state_floats_);
    std::vector<float> phi(s_.d), value(W_, 0.0f), numerator(W_);
    std::int64_t seen = causal_ ? key_boundary(b, t) : key_length(b);
    for (std::int64_t i = row0; i < row1; ++i) {
      if (causal_) {
        const std::int64_t until = visible_keys(b, i);
        add_keys(b, g, seen, until, state.data(), phi, value);
        seen = std::max(seen, until);
      }
      feature_map(q_.data + b * q_.strides[0] + h * q_.strides[1] + i * q_.strides[2], q_.strides[3], s_.d, phi.data());
      kern_.linear.vector_matrix(phi.data(), state.data(), s_.d, W_, numerator.data());
      double denominator = 0;
      for (std::int64_t c = 0; c < s_.d; ++c) denominator += double(phi[c]) * state[s_.d * W_ + c];
      // No key: zeros; a NaN denominator: NaN.
      const float inv = denominator > 0 || std::isnan(denominator) ? static_cast<float>(1.0 / denominator) : 0.0f;
      float* row = out_.data + b * out_.strides[0] + h * out_.strides[1] + i * out_.strides[2];
      for (std::int64_t c = 0; c < s_.dv; ++c) row[c * out_.strides[3]] = numerator[c] * inv;
    }
  }

  // The prior state of a (batch, q head), padded to W_ columns; zeros without one.
  std::vector<float> prior_state(std::int64_t head) const {
    std::vector<float> state(state_floats_, 0.0f);
    if (prior_.empty()) return state;
    const std::int64_t b = head / s_.q_heads, g = head % s_.q_heads / s_.group();
    const float* from = prior_.data() + (b * s_.kv_heads + g) * (s_.d * s_.dv + s_.d);
    for (std::int64_t i = 0; i < s_.d; ++i) std::copy_n(from + i * s_.dv, s_.dv, &state[i * W_]);
    std::copy_n(from + s_.d * s_.dv, s_.d, &state[s_.d * W_]);
    return state;
  }

  const AttentionShape& s_;
  const AttentionOptions& options_;
  const HeadsView<const Q>& q_;
  const HeadsView<const KV>& k_;
  const HeadsView<const KV>& v_;
  const HeadsView<float>& out_;
  std::span<const float> prior_;
  const simd::KernelTable& kern_;
  bool causal_;
  std::int64_t W_, chunks_, chunk_rows_, state_floats_;
};

}  // namespace

template <class Q, class KV>
AttentionStats run_linear_attention(const AttentionShape& shape, const AttentionOptions& options,
                                    const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                    const HeadsView<const KV>& v, const HeadsView<float>& out,
                                    std::span<const float> prior) {
  LinearRunner<Q, KV> runner(shape, options, q, k, v, out, prior);
  return run_on_threads(options.threads, [&] { return runner.run(); });
}

template <class KV>
std::vector<float> linear_key_state(const AttentionShape& shape, const AttentionOptions& options,
                                    const HeadsView<const KV>& k, const HeadsView<const KV>& v) {
  const HeadsView<const KV> no_queries;
  const HeadsView<float> no_out;
  const LinearRunner<KV, KV> runner(shape, options, no_queries, k, v, no_out, {});
  const std::int64_t floats = shape.d * shape.dv + shape.d;
  std::vector<float> state(static_cast<std::size_t>(shape.batch * shape.kv_heads * floats));
  run_on_threads(options.threads, [&] {
    tbb::parallel_for(std::int64_t{0}, shape.batch * shape.kv_heads, [&](std::int64_t head) {
      runner.key_state(head / shape.kv_heads, head % shape.kv_heads, state.data() + head * floats);
    });
    return 0;
  });
  return state;
}

#define LONGATTN_LINEAR(Q, KV)                                                                                     \
  template AttentionStats run_linear_attention(const AttentionShape&, const AttentionOptions&,                    \
                                               const HeadsView<const Q>&, const HeadsView<const KV>&,             \
                                               const HeadsView<const KV>&, const HeadsView<float>&,               \
                                               std::span<const float>);
LONGATTN_LINEAR(float, float)
LONGATTN_LINEAR(bf16, bf16)
LONGATTN_LINEAR(float, bf16)
#undef LONGATTN_LINEAR
template std::vector<float> linear_key_state(const AttentionShape&, const AttentionOptions&,
                                             const HeadsView<const float>&, const HeadsView<const float>&);
template std::vector<float> linear_key_state(const AttentionShape&, const AttentionOptions&,
                                             const HeadsView<const bf16>&, const HeadsView<const bf16>&);

}  // namespace longattn::engine
