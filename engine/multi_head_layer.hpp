// The multi-head layer's inside, shared by its forward pass (engine/multi_head.cpp) and its
// decoding step (engine/multi_head_decode.cpp): the weights, the oneDNN projections and the
// buffers each call borrows.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/aligned_buffer.hpp"
#include "longattn/kv_cache.hpp"
#include "longattn/multi_head.hpp"
#include "longattn/positional.hpp"

namespace longattn {
namespace engine {

// Sets oneDNN's OpenMP team to the layer's thread count for one scope, so that the
// projections and the kernel (on TBB) use the same cores and never more.
class OmpThreads {
 public:
  explicit OmpThreads(int threads) : saved_(omp_get_max_threads()), set_(threads > 0) {
    if (set_) omp_set_num_threads(threads);
  }
  ~OmpThreads() {
    if (set_) omp_set_num_threads(saved_);
  }

 private:
  int saved_;
  bool set_;
};

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// x and y as the layer takes them: [B, N, E] with features contiguous, y apart from x.
void check_layer_views(const TensorView<const float, 3>& x, const TensorView<float, 3>& y, std::int64_t E);

}  // namespace engine

struct MultiHeadSelfAttention::Impl {
  MultiHeadConfig config;
  std::int64_t E, Hq, Hkv, D;
  std::int64_t qkv_width;  // (Hq + 2·Hkv)·D: columns of the Q|K|V buffer
  std::vector<float> w_qkv, b_qkv;  // [(Hq + 2Hkv)·D, E], nn.Linear layout
  std::vector<float> w_out, b_out;  // [E, Hq·D]
  // MultiHeadConfig::precision bf16, where oneDNN has bf16 matmuls: the weights in bf16, Q|K|V
  // in bf16, the matmuls' sources rounded to bf16 (biases and sums stay fp32).
  bool in_bf16 = false;
  std::vector<bf16> w_qkv_bf16, w_out_bf16;
  std::vector<float> position_table;  // learned [max_len, E]
  std::int64_t max_len = 0;
  std::vector<float> relative_bias;  // the layer's copy of config.attention.relative_bias
  std::vector<float> sinks;          // ... and of its sinks

  dnnl::engine engine{dnnl::engine::kind::cpu, 0};

  // A matmul made once and run by any call: with a user scratchpad each call passes its own,
  // which makes one primitive safe to run from many threads at once (oneDNN's "user" mode).
  struct Matmul {
    dnnl::matmul primitive;
    dnnl::memory::desc scratchpad;
  };
  // Matmuls by (0 = a head's projection / 1 = output, rows, source row stride, destination row
  // stride), made at their first use.
  std::map<std::array<std::int64_t, 4>, Matmul> matmuls;
  std::mutex matmuls_mutex;

  // What one forward writes besides y, borrowed for the call and kept for the next: calls at
  // the same time each get their own set.
  struct CallBuffers {
    // Cache-line aligned: the kernel reads value rows of Q|K|V in place when they are.
    engine::AlignedBuffer qkv;         // [B, Hq + 2·Hkv, N, D]: query heads, key heads, value heads (fp32 or bf16)
    engine::AlignedBuffer rounded;     // in_bf16: a block of the matmuls' sources rounded to bf16
    engine::AlignedBuffer block;       // [kBlockRows, max(E, Hq·D)]: x + positions, or a block of y
    engine::AlignedBuffer heads_out;   // [B, N, Hq·D] when Hq·D > E (otherwise y holds it)
    engine::AlignedBuffer scratchpad;  // the matmuls' scratch
    std::int64_t bytes() const {
      return qkv.bytes() + rounded.bytes() + block.bytes() + heads_out.bytes() + scratchpad.bytes();
    }
  };
  std::vector<std::unique_ptr<CallBuffers>> idle_buffers;
  std::mutex buffers_mutex;

  // The sinusoidal rows made so far (a learned table is the layer's from the start), replaced
  // by a longer table when a call needs one; a call keeps the table it started with.
  std::shared_ptr<const std::vector<float>> sinusoids;
  std::mutex sinusoids_mutex;

  // Rows per projection call: blocks keep the position-added copy of x and the output
  // staging small (8 MiB at E = 512) while each matmul stays large enough to run at speed.
  static constexpr std::int64_t kBlockRows = 4096;

  // One forward's buffers and oneDNN stream.
  struct Call {
    CallBuffers& buffers;
    dnnl::stream stream;
  };

  // A call's buffers, given back to the layer however the call ends.
  struct Borrowed {
    explicit Borrowed(Impl& layer) : layer(layer), buffers(layer.borrow_buffers()) {}
    ~Borrowed() { layer.return_buffers(std::move(buffers)); }
    Impl& layer;
    std::unique_ptr<CallBuffers> buffers;
  };

  std::unique_ptr<CallBuffers> borrow_buffers() {
    const std::lock_guard lock(buffers_mutex);
    if (idle_buffers.empty()) return std::make_unique<CallBuffers>();
    std::unique_ptr<CallBuffers> buffers = std::move(idle_buffers.back());
    idle_buffers.pop_back();
    return buffers;
  }
  void return_buffers(std::unique_ptr<CallBuffers> buffers) {
    const std::lock_guard lock(buffers_mutex);
    idle_buffers.push_back(std::move(buffers));
  }

  // The matmul for these descriptors, made at its first use and kept under `key`.
  Matmul matmul_for(const std::array<std::int64_t, 4>& key, const dnnl::memory::desc& src,
                    const dnnl::memory::desc& weights, const dnnl::memory::desc& bias, const dnnl::memory::desc& dst) {
    const std::lock_guard lock(matmuls_mutex);
    auto it = matmuls.find(key);
    if (it == matmuls.end()) {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights, bias, dst), attr, engine);
      it = matmuls.emplace(key, Matmul{dnnl::matmul(pd), pd.scratchpad_desc()}).first;
    }
    return it->second;
  }

  // Runs a matmul with the call's scratchpad, grown to what it needs.
  void execute(Call& call, const Matmul& matmul, std::unordered_map<int, dnnl::memory> args) {
    const auto bytes = static_cast<std::int64_t>(matmul.scratchpad.get_size());
    if (call.buffers.scratchpad.bytes() < bytes) call.buffers.scratchpad.resize((bytes + 3) / 4);
    args.insert({DNNL_ARG_SCRATCHPAD, dnnl::memory(matmul.scratchpad, engine, call.buffers.scratchpad.data())});
    matmul.primitive.execute(call.stream, args);
  }

  // The element type of the matmuls' sources and weights and of Q|K|V, and its size.
  dnnl::memory::data_type narrow_type() const {
    return in_bf16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
  }
  std::int64_t narrow_bytes() const { return in_bf16 ? 2 : 4; }

  // dst[rows, E] (row stride ldd) = src[rows, Hq·D] (row stride lds, elements of
  // narrow_type) · W_outᵀ + b_out.
  void project_out(Call& call, const void* src, std::int64_t lds, std::int64_t rows, float* dst, std::int64_t ldd) {
    const std::int64_t k = Hq * D;
    using dnnl::memory;
    const memory::desc src_md({rows, k}, narrow_type(), memory::dims{lds, 1});
    const memory::desc w_md({k, E}, narrow_type(), memory::format_tag::ba);
    const memory::desc b_md({1, E}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc dst_md({rows, E}, memory::data_type::f32, memory::dims{ldd, 1});
    void* weights = in_bf16 ? static_cast<void*>(w_out_bf16.data()) : static_cast<void*>(w_out.data());
    execute(call, matmul_for({1, rows, lds, ldd}, src_md, w_md, b_md, dst_md),
            {{DNNL_ARG_SRC, memory(src_md, engine, const_cast<void*>(src))},
             {DNNL_ARG_WEIGHTS, memory(w_md, engine, weights)},
             {DNNL_ARG_BIAS, memory(b_md, engine, b_out.data())},
             {DNNL_ARG_DST, memory(dst_md, engine, dst)}});
    call.stream.wait();
  }

  // Q|K|V rows [r0, r0 + rows) of one batch: src[rows, E] (row stride lds) · W_hᵀ + b_h into
  // head h's rows of `heads` ([Hq + 2·Hkv][n][D]), for every head, so that the kernel reads q,
  // k and v rows back to back rather than 6 KiB apart (bench/TUNING.md "The multi-head
  // layer"). One matmul per head: oneDNN 2.6 runs the heads as one batched matmul (src
  // broadcast) only in its reference implementation, minutes for one layer at N = 16384.
  // src and heads hold elements of narrow_type.
  void project_heads(Call& call, const void* src, std::int64_t lds, std::int64_t rows, void* heads, std::int64_t n) {
    using dnnl::memory;
    const memory::desc src_md({rows, E}, narrow_type(), memory::dims{lds, 1});
    const memory::desc w_md({E, D}, narrow_type(), memory::format_tag::ba);
    const memory::desc b_md({1, D}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc dst_md({rows, D}, narrow_type(), memory::dims{D, 1});
    const Matmul matmul = matmul_for({0, rows, lds, D}, src_md, w_md, b_md, dst_md);
    const memory source(src_md, engine, const_cast<void*>(src));
    auto* weights = static_cast<char*>(in_bf16 ? static_cast<void*>(w_qkv_bf16.data()) : static_cast<void*>(w_qkv.data()));
    for (std::int64_t h = 0; h < qkv_width / D; ++h) {
      execute(call, matmul,
              {{DNNL_ARG_SRC, source},
               {DNNL_ARG_WEIGHTS, memory(w_md, engine, weights + h * D * E * narrow_bytes())},
               {DNNL_ARG_BIAS, memory(b_md, engine, b_qkv.data() + h * D)},
               {DNNL_ARG_DST, memory(dst_md, engine, static_cast<char*>(heads) + h * n * D * narrow_bytes())}});
    }
    call.stream.wait();
  }

  std::string check_call(const TensorView<const float, 3>& x, const TensorView<float, 3>& y,
                         std::span<const std::array<std::int64_t, 2>> segments,
                         std::vector<std::int64_t>& row_positions) const;
  std::string reserve(CallBuffers& buffers, std::int64_t B, std::int64_t N) const;
  void copy_weights(const MultiHeadWeights& weights);
  void check_serves_from(const KvCache& cache, std::int64_t layer) const;
  std::vector<std::int64_t> check_decode(const TensorView<const float, 3>& x, const TensorView<float, 3>& y,
                                         const KvCache& cache, std::int64_t layer,
                                         std::span<const SequenceId> sequences) const;
  void project_inputs(Call& call, const TensorView<const float, 3>& x, const float* positions,
                      const std::vector<std::int64_t>& row_positions);
  void rotate_queries_and_keys(Call& call, std::int64_t B, const std::vector<std::int64_t>& row_positions);
  void project_outputs(Call& call, const TensorView<float, 3>& y, bool heads_in_y);
  const bf16* round_rows(Call& call, const float* src, std::int64_t lds, std::int64_t rows, std::int64_t width);
  // Q, K and V of B batches of N rows in the call's head-major buffer, as T (narrow_type's).
  template <class T>
  std::array<HeadsView<const T>, 3> qkv_views(Call& call, std::int64_t B, std::int64_t N) const {
    const std::array<std::int64_t, 4> head_major{N * qkv_width, N * D, D, 1};
    const T* first = reinterpret_cast<const T*>(call.buffers.qkv.data());
    return {HeadsView<const T>{first, {B, Hq, N, D}, head_major},
            HeadsView<const T>{first + Hq * N * D, {B, Hkv, N, D}, head_major},
            HeadsView<const T>{first + (Hq + Hkv) * N * D, {B, Hkv, N, D}, head_major}};
  }
  // What a call reports beside its times: the precision it ran in, the projections' FLOPs
  // over `rows` rows of x (Q|K|V and Wo) and the buffers it held.
  void finish_stats(MultiHeadStats& stats, const Call& call, std::int64_t rows) const {
    stats.precision = in_bf16 ? DType::bf16 : DType::f32;
    stats.projection_flops = 2.0 * static_cast<double>(rows) * static_cast<double>(E) *
                             static_cast<double>(qkv_width + Hq * D);
    stats.scratch_bytes = call.buffers.bytes();
  }
  // Element `offset` of the call's Q|K|V buffer, in narrow_type.
  void* qkv_of(Call& call, std::int64_t offset) const {
    return reinterpret_cast<char*>(call.buffers.qkv.data()) + offset * narrow_bytes();
  }

  // The absolute position table's rows for positions up to the largest of row_positions
  // (rows null without one), and what keeps them alive for the call.
  struct PositionRows {
    std::shared_ptr<const std::vector<float>> owner;
    const float* rows = nullptr;
  };
  PositionRows position_rows(const std::vector<std::int64_t>& row_positions) {
    if (config.positions == AbsolutePositions::sinusoidal) {
      PositionRows p{sinusoidal_rows(*std::max_element(row_positions.begin(), row_positions.end()) + 1)};
      p.rows = p.owner->data();
      return p;
    }
    return {nullptr, config.positions == AbsolutePositions::learned ? position_table.data() : nullptr};
  }

  // At least n rows of sinusoidal positions: made once per length and kept, like a learned
  // table of that length.
  std::shared_ptr<const std::vector<float>> sinusoidal_rows(std::int64_t n) {
    const std::lock_guard lock(sinusoids_mutex);
    if (sinusoids == nullptr || static_cast<std::int64_t>(sinusoids->size()) < n * E) {
      sinusoids = std::make_shared<const std::vector<float>>(sinusoidal_table(n, E));
    }
    return sinusoids;
  }
};

}  // namespace longattn
