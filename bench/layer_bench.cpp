#include "bench/layer_bench.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "bench/measure.hpp"
#include "longattn/attention.hpp"
#include "longattn/error.hpp"
#include "longattn/machine.hpp"
#include "longattn/multi_head.hpp"

namespace longattn::bench {
namespace {

// out[m, n] = src[m, k] · W[n, k]ᵀ + b with oneDNN, W in nn.Linear layout: what the layer's
// projections cost when run as one GEMM over every row.
struct Gemm {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::matmul matmul;
  dnnl::memory src, weights, bias, dst;
  Gemm(std::int64_t m, std::int64_t k, std::int64_t n, float* s, float* w, float* b, float* d) {
    using dnnl::memory;
    const memory::desc src_md({m, k}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc w_md({k, n}, memory::data_type::f32, memory::format_tag::ba);
    const memory::desc b_md({1, n}, memory::data_type::f32, memory::format_tag::ab);
    const memory::desc dst_md({m, n}, memory::data_type::f32, memory::format_tag::ab);
    matmul = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, w_md, b_md, dst_md), engine));
    src = memory(src_md, engine, s), weights = memory(w_md, engine, w), bias = memory(b_md, engine, b);
    dst = memory(dst_md, engine, d);
  }
  void run() {
    matmul.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_BIAS, bias}, {DNNL_ARG_DST, dst}});
    stream.wait();
  }
};

}  // namespace

LayerBenchResult run_layer_bench(const LayerBenchConfig& config) {
  LayerBenchResult r;
  r.config = config;
  const std::int64_t B = config.batch, N = config.n, E = config.e, Hq = config.heads;
  const std::int64_t Hkv = config.kv_heads > 0 ? config.kv_heads : Hq;
  if (Hq < 1 || E % Hq != 0) throw Error("heads: expected a divisor of --e (" + std::to_string(E) + "), got " + std::to_string(Hq));
  const std::int64_t D = E / Hq, C = (Hq + 2 * Hkv) * D;
  r.base_rss_bytes = status_bytes("VmRSS");

  // Weights scaled like nn.Linear's initialization, so activations stay of order one.
  auto weight = [&](std::int64_t rows, std::int64_t cols, unsigned seed) {
    Tensor w = random_tensor(rows * cols, seed);
    for (float& x : w) x /= std::sqrt(static_cast<float>(cols));
    return w;
  };
  const Tensor wq = weight(Hq * D, E, 11), wk = weight(Hkv * D, E, 12), wv = weight(Hkv * D, E, 13),
                           wo = weight(E, Hq * D, 14), bq = random_tensor(Hq * D, 15), bk = random_tensor(Hkv * D, 16),
                           bv = random_tensor(Hkv * D, 17), bo = random_tensor(E, 18);
  const Tensor x = random_tensor(B * N * E, 19);
  Tensor y(static_cast<std::size_t>(B * N * E));

  MultiHeadConfig layer_config;
  layer_config.embed_dim = E, layer_config.heads = Hq, layer_config.kv_heads = Hkv;
  layer_config.attention = config.attention;
  layer_config.attention.threads = config.threads;
  layer_config.precision = config.precision;
  MultiHeadWeights w;
  w.wq = {wq.data(), {Hq * D, E}, {E, 1}}, w.wk = {wk.data(), {Hkv * D, E}, {E, 1}};
  w.wv = {wv.data(), {Hkv * D, E}, {E, 1}}, w.wo = {wo.data(), {E, Hq * D}, {Hq * D, 1}};
  w.bq = bq, w.bk = bk, w.bv = bv, w.bo = bo;
  MultiHeadSelfAttention layer(layer_config, w);
  const TensorView<const float, 3> xv{x.data(), {B, N, E}, {N * E, E, 1}};
  const TensorView<float, 3> yv{y.data(), {B, N, E}, {N * E, E, 1}};

  // One forward first, alone: the peak RSS of the layer as its users run it.
  const MultiHeadStats first = layer.forward(xv, yv);
  r.peak_rss_bytes = peak_rss_bytes();
  r.isa = first.attention.isa;
  r.precision = first.precision;
  r.qk_int8 = first.attention.qk_int8;
  r.attention_flops = first.attention.flops;
  r.projection_flops = first.projection_flops;
  r.io_bytes = 2 * B * N * E * static_cast<std::int64_t>(sizeof(float));
  r.weight_bytes = 2 * static_cast<std::int64_t>((wq.size() + wk.size() + wv.size() + wo.size() + bq.size() + bk.size() +
                                                  bv.size() + bo.size()) * sizeof(float));
  r.qkv_bytes = B * N * C * static_cast<std::int64_t>(sizeof(float));
  r.kernel_scratch_bytes = first.attention.scratch_bytes;

  // The parts alone: the projection GEMMs over all rows, the kernel on contiguous q, k, v.
  Tensor wqkv(wq);
  wqkv.insert(wqkv.end(), wk.begin(), wk.end());
  wqkv.insert(wqkv.end(), wv.begin(), wv.end());
  Tensor bqkv(bq);
  bqkv.insert(bqkv.end(), bk.begin(), bk.end());
  bqkv.insert(bqkv.end(), bv.begin(), bv.end());
  Tensor qkv(static_cast<std::size_t>(B * N * C)), heads_out(static_cast<std::size_t>(B * N * Hq * D));
  Gemm project(B * N, E, C, const_cast<float*>(x.data()), wqkv.data(), bqkv.data(), qkv.data());
  Gemm output(B * N, Hq * D, E, heads_out.data(), const_cast<float*>(wo.data()), const_cast<float*>(bo.data()), y.data());
  const Tensor q = random_tensor(B * Hq * N * D, 1), k = random_tensor(B * Hkv * N * D, 2),
               v = random_tensor(B * Hkv * N * D, 3);
  AttentionOptions kernel_options = layer_config.attention;
  const auto qv = bhnd(q.data(), B, Hq, N, D), kv = bhnd(k.data(), B, Hkv, N, D), vv = bhnd(v.data(), B, Hkv, N, D);
  const auto ov = bhnd(heads_out.data(), B, Hq, N, D);

  // The same layer without position terms: what they cost, measured in the same rounds.
  const bool has_terms = config.attention.rope.enabled() || config.attention.alibi;
  MultiHeadConfig plain_config = layer_config;
  plain_config.attention.rope = {};
  plain_config.attention.alibi = false;
  MultiHeadSelfAttention plain_layer(plain_config, w);

  std::vector<double> layer_total, layer_projection, layer_attention, layer_output, gemm_alone, kernel_alone, plain;
  const int saved_omp = omp_get_max_threads();
  for (int round = 0; round < std::max(1, config.repeats); ++round) {
    MultiHeadStats stats;
    layer_total.push_back(seconds_of([&] { stats = layer.forward(xv, yv); }));
    layer_projection.push_back(stats.projection_seconds);
    layer_attention.push_back(stats.attention_seconds);
    layer_output.push_back(stats.output_seconds);
    omp_set_num_threads(config.threads);
    gemm_alone.push_back(seconds_of([&] {
      project.run();
      output.run();
    }));
    omp_set_num_threads(saved_omp);
    kernel_alone.push_back(seconds_of([&] { attention(qv, kv, vv, ov, kernel_options); }));
    if (has_terms) plain.push_back(seconds_of([&] { plain_layer.forward(xv, yv); }));
  }
  if (has_terms) r.plain_layer_seconds = median(plain);
  r.layer_seconds = median(layer_total);
  r.layer_projection_seconds = median(layer_projection);
  r.layer_attention_seconds = median(layer_attention);
  r.layer_output_seconds = median(layer_output);
  r.gemm_alone_seconds = median(gemm_alone);
  r.kernel_alone_seconds = median(kernel_alone);
  r.peak_gflops = measure_fp32_peak(r.isa, config.threads).gflops;
  return r;
}

}  // namespace longattn::bench
