#include "check/layer_case.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>
#include <vector>

#include "longattn/machine.hpp"
#include "longattn/multi_head.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::check {

LayerCase::LayerCase(std::int64_t batch, std::int64_t n, std::int64_t e, std::int64_t heads, std::int64_t kv_heads,
                     std::int64_t head_dim) {
  problem.batch = batch, problem.n = n, problem.e = e, problem.heads = heads, problem.kv_heads = kv_heads;
  problem.head_dim = head_dim > 0 ? head_dim : e / heads;
}

std::string LayerCase::describe() const {
  const reference::LayerProblem& p = problem;
  std::ostringstream s;
  s << "layer B=" << p.batch << " N=" << p.n << " E=" << p.e << " Hq=" << p.heads << " Hkv=" << p.kv_heads
    << " D=" << p.head_dim << " positions=" << p.positions;
  if (p.window_left >= 0 || p.window_right >= 0) s << " window=(" << p.window_left << "," << p.window_right << ")";
  if (!p.rope.empty()) s << " rope=" << p.rope;
  if (p.alibi) s << " alibi";
  if (packed) s << " packed";
  if (!biases) s << " no-biases";
  if (row_stride > 0) s << " row_stride=" << row_stride;
  if (poison) s << " poisoned";
  if (precision == DType::bf16) s << " bf16";
  if (qk_int8) s << " qk=int8";
  return s.str();
}

namespace {

// x, the weights and the learned table drawn as nn.Linear would start them.
reference::LayerProblem draw(const LayerCase& c) {
  reference::LayerProblem p = c.problem;
  std::mt19937 rng(c.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::int64_t E = p.e, D = p.head_dim, Hq = p.heads, Hkv = p.kv_heads;
  const float w_scale = 1.0f / std::sqrt(float(E));
  auto fill = [&](std::vector<float>& v, std::int64_t size, float scale) {
    v.resize(size);
    for (float& x : v) x = normal(rng) * scale;
  };
  fill(p.x, p.batch * p.n * E, 1.0f);
  fill(p.wq, Hq * D * E, w_scale), fill(p.wk, Hkv * D * E, w_scale), fill(p.wv, Hkv * D * E, w_scale);
  fill(p.wo, E * Hq * D, 1.0f / std::sqrt(float(Hq * D)));
  if (c.biases) fill(p.bq, Hq * D, 0.1f), fill(p.bk, Hkv * D, 0.1f), fill(p.bv, Hkv * D, 0.1f), fill(p.bo, E, 0.1f);
  if (p.positions == "learned" && p.table.empty()) fill(p.table, (p.n + 3) * E, 0.5f);
  if (c.poison) c.poison(p);
  return p;
}

MultiHeadConfig config_of(const reference::LayerProblem& p) {
  MultiHeadConfig config;
  config.embed_dim = p.e, config.heads = p.heads, config.kv_heads = p.kv_heads, config.head_dim = p.head_dim;
  config.positions = p.positions == "learned"      ? AbsolutePositions::learned
                     : p.positions == "sinusoidal" ? AbsolutePositions::sinusoidal
                                                   : AbsolutePositions::none;
  config.attention.window = {p.window_left, p.window_right};
  if (!p.rope.empty()) config.attention.rope.pairing = parse_rope_pairing(p.rope);
  config.attention.alibi = p.alibi;
  return config;
}

}  // namespace

CaseReport run(const LayerCase& c, const RunOn& on) {
  CaseReport report;
  report.description = c.describe();
  const reference::LayerProblem p = draw(c);
  const std::vector<double> expected = reference::multi_head(p);
  const std::int64_t E = p.e, D = p.head_dim, Hq = p.heads, Hkv = p.kv_heads, B = p.batch, N = p.n;
  MultiHeadConfig config = config_of(p);
  config.precision = c.precision;
  if (c.qk_int8) config.attention.qk_precision = QkPrecision::int8;
  const double rel = c.precision == DType::bf16 || c.qk_int8 ? 2e-2 : 1e-5;
  MultiHeadWeights w;
  std::vector<float> in_proj, in_bias;
  if (c.packed) {
    in_proj = p.wq, in_proj.insert(in_proj.end(), p.wk.begin(), p.wk.end());
    in_proj.insert(in_proj.end(), p.wv.begin(), p.wv.end());
    in_bias = p.bq, in_bias.insert(in_bias.end(), p.bk.begin(), p.bk.end());
    in_bias.insert(in_bias.end(), p.bv.begin(), p.bv.end());
    w.in_proj_weight = {in_proj.data(), {3 * E, E}, {E, 1}};
    if (c.biases) w.in_proj_bias = in_bias;
  } else {
    w.wq = {p.wq.data(), {Hq * D, E}, {E, 1}};
    w.wk = {p.wk.data(), {Hkv * D, E}, {E, 1}};
    w.wv = {p.wv.data(), {Hkv * D, E}, {E, 1}};
    w.bq = p.bq, w.bk = p.bk, w.bv = p.bv;
  }
  w.wo = {p.wo.data(), {E, Hq * D}, {Hq * D, 1}};
  w.bo = p.bo;
  if (!p.table.empty()) w.position_table = {p.table.data(), {std::int64_t(p.table.size()) / E, E}, {E, 1}};

  const std::int64_t ld = c.row_stride > 0 ? c.row_stride : E;
  std::vector<float> x(B * N * ld, 0.0f);
  for (std::int64_t r = 0; r < B * N; ++r) std::copy_n(&p.x[r * E], E, &x[r * ld]);
  const TensorView<const float, 3> x_view{x.data(), {B, N, E}, {N * ld, ld, 1}};
  auto rows_of = [&](const std::vector<float>& y) {
    std::vector<float> rows(B * N * E);
    for (std::int64_t r = 0; r < B * N; ++r) std::copy_n(&y[r * ld], E, &rows[r * E]);
    return rows;
  };
  for (Isa isa : on.isas) {
    if (c.qk_int8 && simd::kernels_for(isa).int8_dot == nullptr) continue;
    std::vector<float> first;
    for (int threads : on.threads) {
      const std::string path = to_string(isa) + ", " + std::to_string(threads) + " threads: ";
      auto fail = [&](const std::string& why) { report.failures.push_back(path + why); };
      config.attention.isa = isa, config.attention.threads = threads;
      std::vector<float> y(B * N * ld, NAN), again(B * N * ld, NAN);
      MultiHeadStats stats;
      try {
        MultiHeadSelfAttention layer(config, w);
        stats = layer.forward(x_view, {y.data(), {B, N, E}, {N * ld, ld, 1}});
        // A second forward on the same layer reuses its buffers and gives the same bits.
        layer.forward(x_view, {again.data(), {B, N, E}, {N * ld, ld, 1}});
      } catch (const std::exception& e) {
        fail(std::string("threw ") + e.what());
        continue;
      }
      report.runs += 2;
      if (stats.attention.isa != isa) fail("ran " + to_string(stats.attention.isa));
      // bf16 runs on the AVX-512 path (oneDNN's bf16 matmuls), fp32 elsewhere.
      const DType expected_precision = c.precision == DType::bf16 && resolve_isa(isa) == Isa::avx512 ? DType::bf16 : DType::f32;
      if (stats.precision != expected_precision) fail("ran in " + to_string(stats.precision));
      if (stats.attention.qk_int8 != (c.qk_int8 && int8_scores_run(Hq, Hkv, N))) fail("int8 scores ran or not");
      if (stats.projection_flops != 2.0 * B * N * E * ((Hq + 2 * Hkv) * D + Hq * D)) fail("projection flops");
      const std::vector<float> actual = rows_of(y);
      std::vector<Comparison> comparisons{compare(actual, expected, 0, 0, rel)};
      if (!first.empty()) comparisons.push_back(compare(actual, {first.begin(), first.end()}, 0, 0, rel));
      for (const Comparison& x : comparisons) {
        if (x.bound > 0) report.worst_ratio = std::max(report.worst_ratio, x.error / x.bound);
        if (!x.passed) fail(x.failure);
      }
      const std::vector<float> repeated = rows_of(again);
      if (std::memcmp(repeated.data(), actual.data(), actual.size() * sizeof(float)) != 0) {
        fail("a second forward gave other bits");
      }
      if (first.empty()) first = actual;
    }
  }
  return report;
}

}  // namespace longattn::check
