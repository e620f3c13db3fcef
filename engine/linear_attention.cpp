#include "engine/linear_attention.hpp"

#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
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

// Keys a state update takes as one matrix product, and query rows a causal block answers
// together: its C × C products among themselves cost 2·C·(D + Dv) per row beside the
// 4·D·Dv of the state's (bench/TUNING.md "Linear attention").
constexpr std::int64_t kKeyBlock = 256;
constexpr std::int64_t kCausalRows = 16;

// φ(x) = elu(x) + 1: x + 1 above zero, e^x below. Always positive.
template <class T>
void feature_map(const simd::KernelTable& kernels, const T* x, std::int64_t stride, std::int64_t d, float* phi) {
  if constexpr (std::is_same_v<T, float>) {
    if (stride == 1) return kernels.elementwise.elu_plus_one(x, phi, d);
  }
  for (std::int64_t i = 0; i < d; ++i) phi[i] = to_float(x[i * stride]);
  kernels.elementwise.elu_plus_one(phi, phi, d);
}

template <class Q, class KV>
class LinearRunner {
 public:
  LinearRunner(const AttentionShape& s, const AttentionOptions& options, const HeadsView<const Q>& q,
               const HeadsView<const KV>& k, const HeadsView<const KV>& v, const HeadsView<float>& out,
               std::span<const float> prior)
      : s_(s), options_(options), q_(q), k_(k), v_(v), out_(out), prior_(prior), kern_(simd::kernels_for(options.isa)),
        causal_(options.window == Window::causal()),
        W_((s.dv + 1 + kern_.lanes - 1) / kern_.lanes * kern_.lanes),
        chunks_(std::clamp<std::int64_t>((s.nq + 255) / 256, 1, kMaxChunks)),
        chunk_rows_((s.nq + chunks_ - 1) / chunks_),
        state_floats_(s.d * W_) {}

  // Keys [0, key_length) of head (b, g) as S [D, Dv] then z [D], unpadded.
  void key_state(std::int64_t b, std::int64_t g, float* state) const {
    std::vector<float> sums(state_floats_, 0.0f);
    Blocks m;
    add_keys(b, g, 0, key_length(b), sums.data(), m);
    for (std::int64_t i = 0; i < s_.d; ++i) {
      std::copy_n(&sums[i * W_], s_.dv, state + i * s_.dv);
      state[s_.d * s_.dv + i] = sums[i * W_ + s_.dv];  // z from column Dv
    }
  }

  AttentionStats run() {
    // Per (batch, kv head): partial state sums of each chunk's keys, which its group's query
    // heads share; then each query head's chunks of queries.
    const std::int64_t kv_heads = s_.batch * s_.kv_heads, per_head = (chunks_ + 1) * state_floats_;
    AlignedBuffer states(kv_heads * per_head);
    tbb::parallel_for(std::int64_t{0}, kv_heads * chunks_, [&](std::int64_t task) {
      sum_keys(task / chunks_, task % chunks_, states.data() + task / chunks_ * per_head);
    });
    tbb::parallel_for(std::int64_t{0}, kv_heads, [&](std::int64_t kv_head) {
      // Exclusive prefix over chunks in a fixed order; the full window uses the total.
      float* base = states.data() + kv_head * per_head;
      std::vector<float> running = prior_state(kv_head), chunk(state_floats_);
      for (std::int64_t t = 0; t <= chunks_; ++t) {
        float* slot = base + t * state_floats_;
        std::copy(slot, slot + state_floats_, chunk.begin());
        std::copy(running.begin(), running.end(), slot);
        if (t < chunks_) for (std::int64_t i = 0; i < state_floats_; ++i) running[i] += chunk[i];
      }
    });
    tbb::parallel_for(std::int64_t{0}, s_.batch * s_.q_heads * chunks_, [&](std::int64_t task) {
      const std::int64_t head = task / chunks_, kv_head = head / s_.q_heads * s_.kv_heads + head % s_.q_heads / s_.group();
      answer_queries(head, task % chunks_, states.data() + kv_head * per_head);
    });

    AttentionStats stats;
    std::int64_t keys = 0;
    for (std::int64_t b = 0; b < s_.batch; ++b) {
      keys += key_length(b);
      for (std::int64_t i = 0; i < s_.nq; ++i) stats.visible_pairs += visible_keys(b, i);
    }
    stats.visible_pairs *= s_.q_heads;
    // The work of the recurrence, not of pairs (DESIGN.md §4): per key and head its share
    // φ(k) vᵀ of the D × Dv state, per query its product φ(q)ᵀ S, 2·D·Dv FLOPs each.
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

  // Matrices of one block of rows: Φ(K)ᵀ [D][n_pad] (feature-major, zero past n), V [n][W]
  // (column Dv all ones, zero past it), Φ(Q) [m][D], and the block's products. The ones
  // make every product with V carry its sums along in column Dv: the state's z beside S,
  // each output row's denominator beside its numerator.
  struct Blocks {
    std::vector<float> phi_kt, values, phi_q, scores, out, inverse;
  };
  std::int64_t padded(std::int64_t n) const { return (n + kern_.lanes - 1) / kern_.lanes * kern_.lanes; }

  // Φ(K)ᵀ and V of keys [from, from + n) of head (b, g) into the blocks.
  void load_keys(std::int64_t b, std::int64_t g, std::int64_t from, std::int64_t n, Blocks& m) const {
    const std::int64_t ld = padded(n);
    m.phi_kt.resize(static_cast<std::size_t>(s_.d * ld));
    m.values.resize(static_cast<std::size_t>(n * W_));
    for (std::int64_t i = 0; i < s_.d; ++i) std::fill_n(m.phi_kt.data() + i * ld + n, ld - n, 0.0f);
    std::vector<float> phi(s_.d);
    for (std::int64_t j = 0; j < n; ++j) {
      feature_map(kern_, k_.data + b * k_.strides[0] + g * k_.strides[1] + (from + j) * k_.strides[2], k_.strides[3], s_.d,
                  phi.data());
      for (std::int64_t i = 0; i < s_.d; ++i) m.phi_kt[i * ld + j] = phi[i];
      widen_row(kern_, v_.data + b * v_.strides[0] + g * v_.strides[1] + (from + j) * v_.strides[2], v_.strides[3],
                s_.dv, m.values.data() + j * W_);
      std::fill_n(m.values.data() + j * W_ + s_.dv, W_ - s_.dv, 0.0f);
      m.values[j * W_ + s_.dv] = 1.0f;
    }
  }

  // state (S, z in column Dv) += Φ(K)ᵀ V for the n keys in the blocks.
  void add_loaded_keys(std::int64_t n, Blocks& m, float* state) const {
    simd::PrefetchQueue none;
    kern_.tile.pv_tile(m.phi_kt.data(), s_.d, padded(n), n, m.values.data(), W_, W_, state, nullptr, none);
  }

  // Adds keys [from, to) of head (b, g) into state (S, z in column Dv), a block of keys per product.
  void add_keys(std::int64_t b, std::int64_t g, std::int64_t from, std::int64_t to, float* state, Blocks& m) const {
    for (std::int64_t j0 = from; j0 < to; j0 += kKeyBlock) {
      const std::int64_t n = std::min(kKeyBlock, to - j0);
      load_keys(b, g, j0, n, m);
      add_loaded_keys(n, m, state);
    }
  }

  void sum_keys(std::int64_t kv_head, std::int64_t t, float* states) const {
    const std::int64_t b = kv_head / s_.kv_heads, g = kv_head % s_.kv_heads;
    float* slot = states + t * state_floats_;
    std::fill(slot, slot + state_floats_, 0.0f);
    Blocks m;
    add_keys(b, g, key_boundary(b, t), key_boundary(b, t + 1), slot, m);
  }

  // out = Φ(Q) S for query rows [i0, i0 + rows) of head (b, h), denominators Φ(q)·z in column
  // Dv: the state's part of their outputs.
  void state_products(std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows, const float* state,
                      Blocks& m) const {
    m.phi_q.resize(static_cast<std::size_t>(rows * s_.d));
    for (std::int64_t r = 0; r < rows; ++r) {
      feature_map(kern_, q_.data + b * q_.strides[0] + h * q_.strides[1] + (i0 + r) * q_.strides[2], q_.strides[3], s_.d,
                  m.phi_q.data() + r * s_.d);
    }
    m.out.assign(static_cast<std::size_t>(rows * W_), 0.0f);
    simd::PrefetchQueue none;
    kern_.tile.pv_tile(m.phi_q.data(), rows, s_.d, s_.d, state, W_, W_, m.out.data(), nullptr, none);
  }

  // Rows [i0, i0 + rows) see keys [from, visible_keys) beyond the state: out gains their
  // masked products Φ(Q) Φ(K)ᵀ, times V (with the ones: the denominators' share).
  void add_block_keys(std::int64_t b, std::int64_t i0, std::int64_t rows, std::int64_t from, std::int64_t n,
                      Blocks& m) const {
    const std::int64_t ld = padded(n);
    m.scores.assign(static_cast<std::size_t>(rows * ld), 0.0f);
    simd::PrefetchQueue none;
    kern_.tile.pv_tile(m.phi_q.data(), rows, s_.d, s_.d, m.phi_kt.data(), ld, ld, m.scores.data(), nullptr, none);
    for (std::int64_t r = 0; r < rows; ++r) {
      float* row = m.scores.data() + r * ld;
      const std::int64_t seen = std::clamp<std::int64_t>(visible_keys(b, i0 + r) - from, 0, n);
      std::fill(row + seen, row + ld, 0.0f);  // keys past the row's last
    }
    kern_.tile.pv_tile(m.scores.data(), rows, ld, n, m.values.data(), W_, W_, m.out.data(), nullptr, none);
  }

  // out rows [i0, i0 + rows) of head (b, h) = the products over their denominators.
  void write_rows(std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows, Blocks& m) const {
    m.inverse.resize(static_cast<std::size_t>(rows));
    for (std::int64_t r = 0; r < rows; ++r) {  // no key: zeros; a NaN denominator: NaN
      const float d = m.out[r * W_ + s_.dv];
      m.inverse[r] = d > 0 || std::isnan(d) ? 1.0f / d : 0.0f;
    }
    float* first = out_.data + b * out_.strides[0] + h * out_.strides[1] + i0 * out_.strides[2];
    if (out_.strides[3] == 1) {
      kern_.elementwise.scale_rows(m.out.data(), rows, W_, m.inverse.data(), first, out_.strides[2], s_.dv, false);
      return;
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < s_.dv; ++c) first[r * out_.strides[2] + c * out_.strides[3]] = m.out[r * W_ + c] * m.inverse[r];
    }
  }

  // Queries of chunk t: a block of rows at a time, from the state of the keys before it (full
  // window: all keys); causal blocks add their own new keys, then fold them into the state.
  void answer_queries(std::int64_t head, std::int64_t t, const float* states) const {
    const std::int64_t b = head / s_.q_heads, h = head % s_.q_heads, g = h / s_.group();
    const std::int64_t row0 = t * chunk_rows_, row1 = std::min(s_.nq, row0 + chunk_rows_);
    if (row0 >= row1) return;
    // Full window: every query reads the total, which sits after the last chunk's prefix.
    std::vector<float> state(states + (causal_ ? t : chunks_) * state_floats_,
                             states + ((causal_ ? t : chunks_) + 1) * state_floats_);
    Blocks m;
    std::int64_t seen = causal_ ? key_boundary(b, t) : key_length(b);
    const std::int64_t block_rows = causal_ ? kCausalRows : kKeyBlock;
    for (std::int64_t i0 = row0; i0 < row1; i0 += block_rows) {
      const std::int64_t rows = std::min(block_rows, row1 - i0);
      state_products(b, h, i0, rows, state.data(), m);
      if (causal_) {
        const std::int64_t until = std::max(seen, visible_keys(b, i0 + rows - 1));
        for (std::int64_t j0 = seen; j0 < until; j0 += kKeyBlock) {  // a block's keys, kKeyBlock at a time
          const std::int64_t n = std::min(kKeyBlock, until - j0);
          load_keys(b, g, j0, n, m);
          add_block_keys(b, i0, rows, j0, n, m);
          add_loaded_keys(n, m, state.data());
        }
        seen = until;
      }
      write_rows(b, h, i0, rows, m);
    }
  }

  // The prior state of a (batch, kv head), padded to W_ columns; zeros without one.
  std::vector<float> prior_state(std::int64_t kv_head) const {
    std::vector<float> state(state_floats_, 0.0f);
    if (prior_.empty()) return state;
    const float* from = prior_.data() + kv_head * (s_.d * s_.dv + s_.d);
    for (std::int64_t i = 0; i < s_.d; ++i) {
      std::copy_n(from + i * s_.dv, s_.dv, &state[i * W_]);
      state[i * W_ + s_.dv] = from[s_.d * s_.dv + i];  // z into column Dv
    }
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
