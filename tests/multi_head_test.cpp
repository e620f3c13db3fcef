// The multi-head layer against the fp64 reference layer: every ISA path, threads 1 and 2,
// grouped-query heads, PyTorch's packed in_proj_weight, each positional encoding, row blocks
// of the projections; and every kind of bad description or input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "longattn/longattn.hpp"
#include "longattn/multi_head.hpp"
#include "simd/kernel_table.hpp"
#include "tests/attention_tester.hpp"
#include "check/layer_case.hpp"

using namespace longattn;

namespace {

// check::LayerCase as a test: every ISA path the CPU has, threads 1 and 2, each failure a
// failed check.
struct LayerCase : check::LayerCase {
  using check::LayerCase::LayerCase;
  reference::LayerProblem& p = problem;

  void check(unsigned draw = 1) {
    seed = draw;
    const check::CaseReport report = check::run(*this, {testing::runnable_isas(), {1, 2}});
    INFO(report.description);
    for (const std::string& failure : report.failures) FAIL_CHECK(failure);
    CHECK(report.runs > 0);
  }
};

}  // namespace

TEST_CASE("multi-head layer: heads, grouped-query and multi-query, batches, odd sizes") {
  LayerCase(1, 7, 32, 4, 4).check();
  LayerCase(2, 100, 64, 8, 2).check();
  LayerCase(1, 130, 48, 6, 1).check();   // multi-query
  LayerCase(1, 1, 8, 2, 2).check();      // one token
  LayerCase(1, 50, 24, 3, 3, 5).check(); // Hq·D = 15 < E, D odd
  LayerCase(1, 60, 16, 4, 2, 12).check();  // Hq·D = 48 > E: heads' outputs kept apart from y
}

TEST_CASE("multi-head layer: PyTorch's packed in_proj_weight, no biases, strided rows") {
  LayerCase packed(2, 90, 64, 4, 4);
  packed.packed = true;
  packed.check();
  LayerCase plain(1, 80, 32, 4, 2);
  plain.biases = false;
  plain.row_stride = 40;
  plain.check();
}

TEST_CASE("multi-head layer: sinusoidal and learned positions, RoPE, ALiBi, windows") {
  LayerCase sinusoidal(2, 70, 32, 4, 4);
  sinusoidal.p.positions = "sinusoidal";
  sinusoidal.check();
  LayerCase learned(1, 90, 32, 4, 2);
  learned.p.positions = "learned";
  learned.p.window_left = -1, learned.p.window_right = 0;
  learned.check();
  for (const char* pairing : {"half", "interleaved"}) {
    LayerCase rope(1, 120, 64, 4, 2);
    rope.p.rope = pairing;
    rope.p.window_left = 30, rope.p.window_right = 0;
    rope.check();
  }
  LayerCase alibi(1, 100, 48, 6, 3);
  alibi.p.alibi = true;
  alibi.check();
}

TEST_CASE("multi-head layer: more rows than one projection block (4096)") {
  LayerCase big(1, 4099, 16, 2, 1);
  big.p.positions = "learned";
  big.p.window_left = 64, big.p.window_right = 0;
  big.row_stride = 20;
  big.check();
}

namespace {

struct BadLayer {
  std::int64_t E = 16, Hq = 4, Hkv = 2, D = 4;
  std::vector<float> wq = std::vector<float>(16 * 16, 0.1f), wkv = std::vector<float>(8 * 16, 0.1f),
                     wo = std::vector<float>(16 * 16, 0.1f), table = std::vector<float>(10 * 16, 0.0f);
  MultiHeadConfig config;
  MultiHeadWeights w;
  BadLayer() {
    config.embed_dim = E, config.heads = Hq, config.kv_heads = Hkv;
    w.wq = {wq.data(), {16, 16}, {16, 1}};
    w.wk = w.wv = {wkv.data(), {8, 16}, {16, 1}};
    w.wo = {wo.data(), {16, 16}, {16, 1}};
  }
};

void expect_layer_error(const std::function<void(BadLayer&)>& spoil, const std::string& needle) {
  BadLayer bad;
  spoil(bad);
  CAPTURE(needle);
  try {
    MultiHeadSelfAttention layer(bad.config, bad.w);
    FAIL("no error thrown");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find(needle) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("multi-head layer: a bad description throws Error naming the argument") {
  expect_layer_error([](BadLayer& b) { b.config.heads = b.config.kv_heads = 3; }, "heads: expected a divisor of embed_dim (16)");
  expect_layer_error([](BadLayer& b) { b.config.kv_heads = 3; }, "kv_heads: expected a divisor of heads (4), got 3");
  expect_layer_error([](BadLayer& b) { b.config.embed_dim = 0; }, "embed_dim: expected >= 1");
  expect_layer_error([](BadLayer& b) { b.w.wk = {b.wkv.data(), {8, 12}, {12, 1}}; },
                     "wk.shape: expected [8, 16] ([kv_heads · head_dim, E]), got [8, 12]");
  expect_layer_error([](BadLayer& b) { b.w.wo = {b.wo.data(), {16, 8}, {8, 1}}; }, "wo.shape: expected [16, 16]");
  expect_layer_error([](BadLayer& b) { b.w.bo = std::span<const float>(b.wo.data(), 5); }, "bo: expected 16 floats or none, got 5");
  expect_layer_error([](BadLayer& b) { b.w.in_proj_weight = {b.wq.data(), {16, 16}, {16, 1}}; },
                     "in_proj_weight: given together with wq, wk, wv");
  expect_layer_error([](BadLayer& b) {
    b.w.wq = b.w.wk = b.w.wv = {};
    b.w.in_proj_weight = {b.wq.data(), {16, 16}, {16, 1}};
  }, "in_proj_weight: the packed [3E, E] layout of nn.MultiheadAttention needs kv_heads = heads");
  expect_layer_error([](BadLayer& b) { b.config.positions = AbsolutePositions::learned; },
                     "position_table.shape: expected [max_len, 16] ([max_len, E]), got none");
  expect_layer_error([](BadLayer& b) {
    b.config.positions = AbsolutePositions::learned;
    b.w.position_table = {b.table.data(), {16, 10}, {10, 1}};
  }, "position_table.shape: expected [max_len, 16]");
  expect_layer_error([](BadLayer& b) {
    b.config.head_dim = 3;
    b.config.attention.rope.pairing = RopePairing::half;
  }, "rope: rotates pairs of features, expected an even D, got 3");
  expect_layer_error([](BadLayer& b) { b.config.attention.window = {-2, 0}; }, "window: expected left and right >= -1");
}

TEST_CASE("multi-head layer: bad inputs to forward throw and write nothing") {
  BadLayer b;
  b.config.positions = AbsolutePositions::learned;
  b.w.position_table = {b.table.data(), {10, 16}, {16, 1}};
  MultiHeadSelfAttention layer(b.config, b.w);
  std::vector<float> x(2 * 12 * 16, 0.5f), y(2 * 12 * 16, 7.0f);
  auto expect = [&](TensorView<const float, 3> xv, TensorView<float, 3> yv, const std::string& needle) {
    CAPTURE(needle);
    try {
      layer.forward(xv, yv);
      FAIL("no error thrown");
    } catch (const Error& e) {
      CAPTURE(std::string(e.what()));
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
    for (float v : y) REQUIRE(v == 7.0f);
  };
  expect({x.data(), {1, 8, 12}, {96, 12, 1}}, {y.data(), {1, 8, 16}, {128, 16, 1}}, "x.shape: expected [B >= 1, N >= 1, 16], got [1, 8, 12]");
  expect({x.data(), {1, 12, 16}, {192, 16, 1}}, {y.data(), {1, 12, 16}, {192, 16, 1}},
         "x.shape[1] (tokens): the learned position table has 10 rows, got N = 12");
  expect({x.data(), {1, 8, 16}, {128, 16, 1}}, {y.data(), {1, 7, 16}, {112, 16, 1}}, "y.shape: expected x's [B, N, E]");
  expect({x.data(), {1, 8, 16}, {128, 16, 2}}, {y.data(), {1, 8, 16}, {128, 16, 1}}, "x.strides: expected features contiguous");
  expect({x.data(), {1, 8, 16}, {128, 16, 1}}, {nullptr, {1, 8, 16}, {128, 16, 1}}, "y.data: expected a pointer, got null");
  float* shared = y.data();
  expect({shared, {1, 8, 16}, {128, 16, 1}}, {shared + 64, {1, 8, 16}, {128, 16, 1}}, "y: must not overlap x");
}

TEST_CASE("multi-head layer: NaN and inf in weights and tokens reach what they touch, as in PyTorch") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (auto poison : std::vector<std::function<void(reference::LayerProblem&)>>{
           [&](reference::LayerProblem& p) { p.wq[5] = nan; },   // every query of head 0: all outputs
           [&](reference::LayerProblem& p) { p.wk[70] = nan; },  // every key of head 1
           [&](reference::LayerProblem& p) { p.wv[3] = std::numeric_limits<float>::infinity(); },
           [&](reference::LayerProblem& p) { p.x[20 * p.e + 3] = nan; },  // token 20 of batch 0
       }) {
    LayerCase layer(2, 40, 32, 4, 2);
    layer.p.window_left = -1, layer.p.window_right = 0;  // causal: tokens before 20 stay finite
    layer.poison = poison;
    layer.check();
  }
}

TEST_CASE("multi-head layer with int8 scores: within 2e-2 of the fp64 layer, fp32 and bf16") {
  const auto isas = testing::runnable_isas();
  if (!simd::cpu_has_avx512_vnni() || std::find(isas.begin(), isas.end(), Isa::avx512) == isas.end()) return;
  for (DType precision : {DType::f32, DType::bf16}) {
    LayerCase c(2, 300, 64, 8, 2);
    c.qk_int8 = true, c.precision = precision;
    c.p.window_left = -1, c.p.window_right = 0;
    c.p.rope = "half";
    c.check();
  }
}

TEST_CASE("multi-head layer in bf16: oneDNN's bf16 projections and bf16 attention, within the bf16 tolerance") {
  for (auto [B, N, E, Hq, Hkv] : {std::array<std::int64_t, 5>{2, 100, 64, 8, 2}, {1, 37, 48, 6, 6}, {1, 4099, 16, 2, 1}}) {
    LayerCase c(B, N, E, Hq, Hkv);
    c.precision = DType::bf16;
    c.p.window_left = -1, c.p.window_right = 0;
    c.check();
  }
  LayerCase rope(1, 90, 64, 4, 2);
  rope.precision = DType::bf16;
  rope.p.rope = "half";
  rope.p.positions = "sinusoidal";
  rope.check();
  LayerCase wide(1, 60, 16, 4, 2, 12);  // Hq·D = 48 > E: heads' outputs kept apart from y
  wide.precision = DType::bf16;
  wide.check();
}
