// The multi-head layer: oneDNN matmuls make Q, K and V head by head into one head-major buffer
// [B, Hq + 2·Hkv, N, D], which the kernel reads in place as it reads any BHND tensor (no
// transpose pass, no copy of q or v); the kernel writes each head's output straight into y's
// rows, and a second matmul turns them into y a block of rows at a time.
#include "longattn/multi_head.hpp"

#include "engine/multi_head_layer.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <oneapi/tbb/parallel_for.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/aligned_buffer.hpp"
#include "engine/attention_validation.hpp"
#include "engine/positional_encoding.hpp"
#include "engine/thread_arena.hpp"
#include "longattn/attention.hpp"
#include "longattn/error.hpp"
#include "longattn/machine.hpp"
#include "longattn/plan.hpp"
#include "longattn/positional.hpp"

namespace longattn {
namespace {

[[noreturn]] void fail(const std::string& what) { throw Error("multi-head attention: " + what); }

std::string shape_text(std::int64_t rows, std::int64_t cols) {
  std::string text = "[";  // appended piece by piece: GCC 12 warns falsely on "[" + to_string(..)
  text += std::to_string(rows);
  text += ", ";
  text += std::to_string(cols);
  text += "]";
  return text;
}

// Appends a [rows, cols] weight, checked against its expected shape, to `out` row by row.
void append_matrix(const TensorView<const float, 2>& w, std::int64_t rows, std::int64_t cols, const char* name,
                   const char* meaning, std::vector<float>& out) {
  if (w.shape[0] != rows || w.shape[1] != cols) {
    fail(std::string(name) + ".shape: expected " + shape_text(rows, cols) + " (" + meaning + "), got " +
         shape_text(w.shape[0], w.shape[1]));
  }
  if (w.data == nullptr) fail(std::string(name) + ".data: expected a pointer, got null");
  if (w.strides[0] < 0 || w.strides[1] < 0) fail(std::string(name) + ".strides: expected >= 0");
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) out.push_back(w.data[r * w.strides[0] + c * w.strides[1]]);
  }
}

// Appends an optional bias of `size` floats (zeros when empty).
void append_bias(std::span<const float> b, std::int64_t size, const char* name, std::vector<float>& out) {
  if (b.empty()) {
    out.insert(out.end(), static_cast<std::size_t>(size), 0.0f);
    return;
  }
  if (static_cast<std::int64_t>(b.size()) != size) {
    fail(std::string(name) + ": expected " + std::to_string(size) + " floats or none, got " + std::to_string(b.size()));
  }
  out.insert(out.end(), b.begin(), b.end());
}

// Whether oneDNN makes bf16 matmuls on this CPU (AVX-512 and later): it throws where not.
bool has_bf16_matmul(const dnnl::engine& engine) {
  using dnnl::memory;
  try {
    const memory::desc src({4, 16}, memory::data_type::bf16, memory::format_tag::ab);
    const memory::desc weights({16, 16}, memory::data_type::bf16, memory::format_tag::ba);
    const memory::desc dst({4, 16}, memory::data_type::f32, memory::format_tag::ab);
    dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights, dst), engine);
    return true;
  } catch (const dnnl::error&) {
    return false;
  }
}

}  // namespace

MultiHeadSelfAttention::MultiHeadSelfAttention(const MultiHeadConfig& config, const MultiHeadWeights& weights)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.config = config;
  const std::int64_t E = config.embed_dim, Hq = config.heads;
  if (E < 1) fail("embed_dim: expected >= 1, got " + std::to_string(E));
  if (Hq < 1) fail("heads: expected >= 1, got " + std::to_string(Hq));
  const std::int64_t Hkv = config.kv_heads == 0 ? Hq : config.kv_heads;
  if (Hkv < 1 || Hq % Hkv != 0) {
    fail("kv_heads: expected a divisor of heads (" + std::to_string(Hq) + "), got " + std::to_string(Hkv));
  }
  if (config.head_dim == 0 && E % Hq != 0) {
    fail("heads: expected a divisor of embed_dim (" + std::to_string(E) + ") when head_dim is 0, got " +
         std::to_string(Hq));
  }
  const std::int64_t D = config.head_dim == 0 ? E / Hq : config.head_dim;
  if (D < 1) fail("head_dim: expected >= 1 (or 0 = embed_dim / heads), got " + std::to_string(D));
  m.E = E, m.Hq = Hq, m.Hkv = Hkv, m.D = D, m.qkv_width = (Hq + 2 * Hkv) * D;
  m.config.kv_heads = Hkv;
  m.config.head_dim = D;

  const AttentionOptions& a = config.attention;
  if (!a.key_lengths.empty() || !a.mask.empty() || a.block_sparse.enabled() || !a.score_bias.empty() ||
      !a.cu_seqlens_q.empty() || !a.cu_seqlens_k.empty()) {
    fail("attention: key_lengths, mask, block_sparse, score_bias and cu_seqlens are per-call inputs of attention(), "
         "not part of a layer");
  }
  // The kernel's own checks (window, RoPE with odd D, relative table shape, normalizer, ...),
  // now rather than at the first forward: the options against a one-token problem of the
  // layer's heads.
  engine::validate_options({1, Hq, Hkv, 1, 1, D, D}, a, false);
  if (!a.relative_bias.empty()) {
    const auto& t = a.relative_bias;
    for (std::int64_t h = 0; h < t.shape[0]; ++h)
      for (std::int64_t c = 0; c < t.shape[1]; ++c) m.relative_bias.push_back(t.data[h * t.strides[0] + c * t.strides[1]]);
    m.config.attention.relative_bias = {m.relative_bias.data(), t.shape, {t.shape[1], 1}};
  }
  m.sinks.assign(a.sinks.begin(), a.sinks.end());
  m.config.attention.sinks = m.sinks;

  m.copy_weights(weights);
  const TensorView<const float, 2>& table = weights.position_table;
  if (config.positions == AbsolutePositions::learned) {
    if (table.empty() || table.shape[1] != E || table.shape[0] < 1) {
      fail("position_table.shape: expected [max_len, " + std::to_string(E) + "] ([max_len, E]), got " +
           (table.empty() ? std::string("none") : shape_text(table.shape[0], table.shape[1])));
    }
    append_matrix(table, table.shape[0], E, "position_table", "[max_len, E]", m.position_table);
    m.max_len = table.shape[0];
  } else if (!table.empty()) {
    fail("position_table: given, but positions is not AbsolutePositions::learned");
  }
}

// The layer's copy of the projections' weights and biases, checked against its sizes; in
// bf16 too where the layer computes in bf16.
void MultiHeadSelfAttention::Impl::copy_weights(const MultiHeadWeights& weights) {
  const bool packed = !weights.in_proj_weight.empty();
  if (packed) {
    if (!weights.wq.empty() || !weights.wk.empty() || !weights.wv.empty()) {
      fail("in_proj_weight: given together with wq, wk, wv; expected one or the other");
    }
    if (Hkv != Hq || Hq * D != E) {
      fail("in_proj_weight: the packed [3E, E] layout of nn.MultiheadAttention needs kv_heads = heads and "
           "heads · head_dim = E; got kv_heads " + std::to_string(Hkv) + ", heads · head_dim " + std::to_string(Hq * D));
    }
    append_matrix(weights.in_proj_weight, 3 * E, E, "in_proj_weight", "[3E, E]", w_qkv);
    append_bias(weights.in_proj_bias, 3 * E, "in_proj_bias", b_qkv);
  } else {
    append_matrix(weights.wq, Hq * D, E, "wq", "[heads · head_dim, E]", w_qkv);
    append_matrix(weights.wk, Hkv * D, E, "wk", "[kv_heads · head_dim, E]", w_qkv);
    append_matrix(weights.wv, Hkv * D, E, "wv", "[kv_heads · head_dim, E]", w_qkv);
    append_bias(weights.bq, Hq * D, "bq", b_qkv);
    append_bias(weights.bk, Hkv * D, "bk", b_qkv);
    append_bias(weights.bv, Hkv * D, "bv", b_qkv);
  }
  append_matrix(weights.wo, E, Hq * D, "wo", "[E, heads · head_dim]", w_out);
  append_bias(weights.bo, E, "bo", b_out);
  // bf16 where the layer's kernels run AVX-512, as oneDNN's bf16 matmuls need (a layer held
  // to AVX2 or scalar kernels computes as a CPU without them would).
  if (config.precision == DType::bf16 && resolve_isa(config.attention.isa) == Isa::avx512 && has_bf16_matmul(engine)) {
    in_bf16 = true;
    for (float w : w_qkv) w_qkv_bf16.push_back(bf16(w));
    for (float w : w_out) w_out_bf16.push_back(bf16(w));
  }
}


MultiHeadSelfAttention::~MultiHeadSelfAttention() = default;
MultiHeadSelfAttention::MultiHeadSelfAttention(MultiHeadSelfAttention&&) noexcept = default;
MultiHeadSelfAttention& MultiHeadSelfAttention::operator=(MultiHeadSelfAttention&&) noexcept = default;

const MultiHeadConfig& MultiHeadSelfAttention::config() const { return impl_->config; }

namespace engine {

void check_layer_views(const TensorView<const float, 3>& x, const TensorView<float, 3>& y, std::int64_t E) {
  for (const auto& [view, name] : {std::pair{TensorView<const float, 3>{x}, "x"},
                                   {TensorView<const float, 3>{y.data, y.shape, y.strides}, "y"}}) {
    if (view.shape[0] < 1 || view.shape[1] < 1 || view.shape[2] != E) {
      fail(std::string(name) + ".shape: expected [B >= 1, N >= 1, " + std::to_string(E) + "], got [" +
           std::to_string(view.shape[0]) + ", " + std::to_string(view.shape[1]) + ", " + std::to_string(view.shape[2]) + "]");
    }
    if (view.data == nullptr) fail(std::string(name) + ".data: expected a pointer, got null");
    if (view.strides[2] != 1 || view.strides[1] < E || view.strides[0] < view.strides[1] * (view.shape[1] - 1) + E) {
      fail(std::string(name) + ".strides: expected features contiguous and rows apart (>= [N·E, E, 1]), got [" +
           std::to_string(view.strides[0]) + ", " + std::to_string(view.strides[1]) + ", " +
           std::to_string(view.strides[2]) + "]");
    }
  }
  const std::int64_t B = x.shape[0], N = x.shape[1];
  if (y.shape[0] != B || y.shape[1] != N) fail("y.shape: expected x's [B, N, E]");
  const auto x_end = x.data + (B - 1) * x.strides[0] + (N - 1) * x.strides[1] + E;
  const auto y_end = y.data + (B - 1) * y.strides[0] + (N - 1) * y.strides[1] + E;
  if (y.data < x_end && x.data < y_end) fail("y: must not overlap x");
}

}  // namespace engine

// X (+ the table's rows at each row's position, unless null) → Q | K | V, head-major, row
// blocks of each batch. row_positions: N positions that every batch shares, or B·N, each
// batch's own (a decoding step's sequences).
void MultiHeadSelfAttention::Impl::project_inputs(Call& call, const TensorView<const float, 3>& x, const float* table,
                                                  const std::vector<std::int64_t>& row_positions) {
  const std::int64_t B = x.shape[0], N = x.shape[1];
  const bool per_batch = static_cast<std::int64_t>(row_positions.size()) == B * N;
  float* block = call.buffers.block.data();
  for (std::int64_t b = 0; b < B; ++b) {
    const std::int64_t* positions = row_positions.data() + (per_batch ? b * N : 0);
    for (std::int64_t r0 = 0; r0 < N; r0 += kBlockRows) {
      const std::int64_t rows = std::min(kBlockRows, N - r0);
      const float* src = x.data + b * x.strides[0] + r0 * x.strides[1];
      std::int64_t lds = x.strides[1];
      if (table != nullptr) {
        for (std::int64_t r = 0; r < rows; ++r) {
          const float* row = src + r * lds;
          const float* p = table + positions[r0 + r] * E;
          float* dst = block + r * E;
          for (std::int64_t c = 0; c < E; ++c) dst[c] = row[c] + p[c];
        }
        src = block, lds = E;
      }
      const void* narrow = src;
      if (in_bf16) {
        narrow = round_rows(call, src, lds, rows, E);
        lds = E;
      }
      project_heads(call, narrow, lds, rows, qkv_of(call, b * N * qkv_width + r0 * D), N);
    }
  }
}

// rows × width floats (row stride lds) rounded to bf16 into the call's `rounded` block.
const bf16* MultiHeadSelfAttention::Impl::round_rows(Call& call, const float* src, std::int64_t lds, std::int64_t rows,
                                                    std::int64_t width) {
  auto* to = reinterpret_cast<bf16*>(call.buffers.rounded.data());
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < width; ++c) to[r * width + c] = bf16(src[r * lds + c]);
  }
  return to;
}

// RoPE in one pass over the layer's own Q and K rows (query i and key i both sit at row i's
// position): the kernel would otherwise rotate each query again for every key chunk.
void MultiHeadSelfAttention::Impl::rotate_queries_and_keys(Call& call, std::int64_t B,
                                                           const std::vector<std::int64_t>& row_positions) {
  const AttentionOptions& options = config.attention;
  const std::int64_t N = static_cast<std::int64_t>(row_positions.size());
  const engine::RotaryTable rope(options.rope, D, *std::max_element(row_positions.begin(), row_positions.end()) + 1);
  engine::run_on_threads(options.threads, [&] {
    tbb::parallel_for(std::int64_t{0}, B * (Hq + Hkv), [&](std::int64_t head) {  // Hq query heads, then Hkv key heads
      const std::int64_t first = (head / (Hq + Hkv) * qkv_width + head % (Hq + Hkv) * D) * N;
      if (!in_bf16) {
        float* rows = call.buffers.qkv.data() + first;
        for (std::int64_t i = 0; i < N; ++i) {
          rope.rotate(rows + i * D, 1, row_positions[i], 1.0f, rows + i * D);  // in place: pairs are disjoint
        }
        return;
      }
      bf16* rows = static_cast<bf16*>(qkv_of(call, first));
      std::vector<float> row(static_cast<std::size_t>(D));
      for (std::int64_t i = 0; i < N; ++i) {  // widened, turned, rounded back
        for (std::int64_t c = 0; c < D; ++c) row[c] = static_cast<float>(rows[i * D + c]);
        rope.rotate(row.data(), 1, row_positions[i], 1.0f, row.data());
        for (std::int64_t c = 0; c < D; ++c) rows[i * D + c] = bf16(row[c]);
      }
    });
  });
}

// O → Y. From y's own rows through a block buffer (each block is read before it is
// overwritten), or straight from the separate head outputs.
void MultiHeadSelfAttention::Impl::project_outputs(Call& call, const TensorView<float, 3>& y, bool heads_in_y) {
  const std::int64_t B = y.shape[0], N = y.shape[1], HD = Hq * D;
  float* block = call.buffers.block.data();
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t r0 = 0; r0 < N; r0 += kBlockRows) {
      const std::int64_t rows = std::min(kBlockRows, N - r0);
      float* y_rows = y.data + b * y.strides[0] + r0 * y.strides[1];
      if (in_bf16) {  // the heads' outputs rounded into a block of their own, Wo's product straight into y
        const float* heads = heads_in_y ? y_rows : call.buffers.heads_out.data() + (b * N + r0) * HD;
        project_out(call, round_rows(call, heads, heads_in_y ? y.strides[1] : HD, rows, HD), HD, rows, y_rows,
                    y.strides[1]);
      } else if (heads_in_y) {
        project_out(call, y_rows, y.strides[1], rows, block, E);
        for (std::int64_t r = 0; r < rows; ++r) std::memcpy(y_rows + r * y.strides[1], block + r * E, E * sizeof(float));
      } else {
        project_out(call, call.buffers.heads_out.data() + (b * N + r0) * HD, HD, rows, y_rows, y.strides[1]);
      }
    }
  }
}

MultiHeadStats MultiHeadSelfAttention::forward(TensorView<const float, 3> x, TensorView<float, 3> y) const {
  return forward(x, y, SequenceRows{});
}

namespace {

// Each row's position in the sequence: its index, or where the segments put it.
std::vector<std::int64_t> positions_of_rows(std::int64_t N, std::span<const std::array<std::int64_t, 2>> segments) {
  std::vector<std::int64_t> positions;
  if (segments.empty()) {
    for (std::int64_t i = 0; i < N; ++i) positions.push_back(i);
    return positions;
  }
  for (const auto& [start, length] : segments) {
    if (start < 0 || length < 0) fail("rows.segments: expected start >= 0 and length >= 0");
    for (std::int64_t i = 0; i < length && static_cast<std::int64_t>(positions.size()) <= N; ++i) positions.push_back(start + i);
  }
  if (static_cast<std::int64_t>(positions.size()) != N) {
    fail("rows.segments: expected segments holding x's " + std::to_string(N) + " rows");
  }
  return positions;
}

}  // namespace

// What is wrong with a forward call's arguments (empty: nothing); row_positions: each row's.
std::string MultiHeadSelfAttention::Impl::check_call(const TensorView<const float, 3>& x, const TensorView<float, 3>& y,
                                                     std::span<const std::array<std::int64_t, 2>> segments,
                                                     std::vector<std::int64_t>& row_positions) const {
  try {
    engine::check_layer_views(x, y, E);
    row_positions = positions_of_rows(x.shape[1], segments);
    const std::int64_t last = *std::max_element(row_positions.begin(), row_positions.end());
    if (config.positions == AbsolutePositions::learned && last >= max_len) {
      fail("x.shape[1] (tokens): the learned position table has " + std::to_string(max_len) + " rows, got " +
           (segments.empty() ? "N = " + std::to_string(x.shape[1]) : "a token at position " + std::to_string(last)));
    }
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

// Sizes the call's buffers for B·N rows, or says why they do not fit.
std::string MultiHeadSelfAttention::Impl::reserve(CallBuffers& buffers, std::int64_t B, std::int64_t N) const {
  const std::int64_t HD = Hq * D;
  try {
    buffers.qkv.resize((B * N * qkv_width * narrow_bytes() + 3) / 4);
    buffers.block.resize(std::min(N, kBlockRows) * std::max(E, HD));
    if (in_bf16) buffers.rounded.resize((std::min(N, kBlockRows) * std::max(E, HD) + 1) / 2);
    if (HD > E) buffers.heads_out.resize(B * N * HD);
  } catch (const std::bad_alloc&) {
    return "multi-head attention: forward: out of memory: the Q|K|V buffer of " + std::to_string(B * N * qkv_width) +
           " floats does not fit";
  }
  return {};
}

MultiHeadStats MultiHeadSelfAttention::forward(TensorView<const float, 3> x, TensorView<float, 3> y,
                                               const SequenceRows& rows) const {
  Impl& m = *impl_;
  std::vector<std::int64_t> row_positions;
  std::string problem = m.check_call(x, y, rows.segments, row_positions);
  const Impl::Borrowed borrowed(m);
  Impl::Call call{*borrowed.buffers, dnnl::stream(m.engine)};
  Impl::CallBuffers& buffers = call.buffers;
  const std::int64_t B = x.shape[0], N = x.shape[1], E = m.E, Hq = m.Hq, Hkv = m.Hkv, D = m.D;
  if (problem.empty()) problem = m.reserve(buffers, B, N);
  if (problem.empty() && m.in_bf16 && rows.attend) {
    problem = "multi-head attention: forward: a bf16 layer does not run split across processes yet";
  }
  if (rows.agree) rows.agree(problem);  // before anything is written
  if (!problem.empty()) throw Error(problem);

  const Impl::PositionRows positions = m.position_rows(row_positions);
  MultiHeadStats stats;
  const engine::OmpThreads omp_threads(m.config.attention.threads);
  const bool in_y = Hq * D <= E;  // head outputs into y's rows when they fit
  auto start = std::chrono::steady_clock::now();
  m.project_inputs(call, x, positions.rows, row_positions);
  stats.projection_seconds = engine::seconds_since(start);

  // Attention on the head-major Q | K | V.
  const HeadsView<float> o = in_y ? HeadsView<float>{y.data, {B, Hq, N, D}, {y.strides[0], D, y.strides[1], 1}}
                                  : bnhd(buffers.heads_out.data(), B, N, Hq, D);
  start = std::chrono::steady_clock::now();
  AttentionOptions options = m.config.attention;
  if (options.rope.enabled()) {
    m.rotate_queries_and_keys(call, B, row_positions);
    options.rope = {};
  }
  AttentionProblem problem_shape{.batch = B, .q_heads = Hq, .kv_heads = Hkv, .nq = N, .nk = N, .d = D};
  if (m.in_bf16) {
    const auto [q, k, v] = m.qkv_views<bf16>(call, B, N);
    problem_shape.q_type = problem_shape.kv_type = DType::bf16;
    stats.attention = AttentionPlan(problem_shape, options).run(q, k, v, o);
  } else if (rows.attend) {
    const auto [q, k, v] = m.qkv_views<float>(call, B, N);
    stats.attention = rows.attend(q, k, v, o, options);
  } else {
    const auto [q, k, v] = m.qkv_views<float>(call, B, N);
    stats.attention = AttentionPlan(problem_shape, options).run(q, k, v, o);
  }
  stats.attention_seconds = engine::seconds_since(start);

  start = std::chrono::steady_clock::now();
  m.project_outputs(call, y, in_y);
  stats.output_seconds = engine::seconds_since(start);
  m.finish_stats(stats, call, B * N);
  return stats;
}

}  // namespace longattn
