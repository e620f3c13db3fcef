// The multi-head layer against the fp64 reference layer: every ISA path, threads 1 and 2,
// grouped-query heads, PyTorch's packed in_proj_weight, each positional encoding, row blocks
// of the projections; and every kind of bad description or input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "longattn/longattn.hpp"
#include "longattn/multi_head.hpp"
#include "tests/attention_tester.hpp"
#include "tests/reference_multi_head.hpp"

using namespace longattn;

namespace {

struct LayerCase {
  reference::LayerProblem p;
  std::int64_t row_stride = 0;  // x and y rows this far apart (0: E, contiguous)
  bool packed = false;          // in_proj_weight [3E, E] instead of wq, wk, wv
  bool biases = true;

  LayerCase(std::int64_t batch, std::int64_t n, std::int64_t e, std::int64_t heads, std::int64_t kv_heads,
            std::int64_t head_dim = 0) {
    p.batch = batch, p.n = n, p.e = e, p.heads = heads, p.kv_heads = kv_heads;
    p.head_dim = head_dim > 0 ? head_dim : e / heads;
  }

  void check(unsigned seed = 1) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const std::int64_t E = p.e, D = p.head_dim, Hq = p.heads, Hkv = p.kv_heads, B = p.batch, N = p.n;
    const float w_scale = 1.0f / std::sqrt(float(E));
    auto fill = [&](std::vector<float>& v, std::int64_t size, float scale) {
      v.resize(size);
      for (float& x : v) x = normal(rng) * scale;
    };
    fill(p.x, B * N * E, 1.0f);
    fill(p.wq, Hq * D * E, w_scale), fill(p.wk, Hkv * D * E, w_scale), fill(p.wv, Hkv * D * E, w_scale);
    fill(p.wo, E * Hq * D, 1.0f / std::sqrt(float(Hq * D)));
    if (biases) fill(p.bq, Hq * D, 0.1f), fill(p.bk, Hkv * D, 0.1f), fill(p.bv, Hkv * D, 0.1f), fill(p.bo, E, 0.1f);
    if (p.positions == "learned" && p.table.empty()) fill(p.table, (N + 3) * E, 0.5f);
    const std::vector<double> expected = reference::multi_head(p);

    MultiHeadConfig config;
    config.embed_dim = E, config.heads = Hq, config.kv_heads = Hkv, config.head_dim = D;
    config.positions = p.positions == "learned"      ? AbsolutePositions::learned
                       : p.positions == "sinusoidal" ? AbsolutePositions::sinusoidal
                                                     : AbsolutePositions::none;
    config.attention.window = {p.window_left, p.window_right};
    if (!p.rope.empty()) config.attention.rope.pairing = parse_rope_pairing(p.rope);
    config.attention.alibi = p.alibi;
    MultiHeadWeights w;
    std::vector<float> in_proj, in_bias;
    if (packed) {
      in_proj = p.wq, in_proj.insert(in_proj.end(), p.wk.begin(), p.wk.end());
      in_proj.insert(in_proj.end(), p.wv.begin(), p.wv.end());
      in_bias = p.bq, in_bias.insert(in_bias.end(), p.bk.begin(), p.bk.end());
      in_bias.insert(in_bias.end(), p.bv.begin(), p.bv.end());
      w.in_proj_weight = {in_proj.data(), {3 * E, E}, {E, 1}};
      if (biases) w.in_proj_bias = in_bias;
    } else {
      w.wq = {p.wq.data(), {Hq * D, E}, {E, 1}};
      w.wk = {p.wk.data(), {Hkv * D, E}, {E, 1}};
      w.wv = {p.wv.data(), {Hkv * D, E}, {E, 1}};
      w.bq = p.bq, w.bk = p.bk, w.bv = p.bv;
    }
    w.wo = {p.wo.data(), {E, Hq * D}, {Hq * D, 1}};
    w.bo = p.bo;
    if (!p.table.empty()) w.position_table = {p.table.data(), {std::int64_t(p.table.size()) / E, E}, {E, 1}};

    const std::int64_t ld = row_stride > 0 ? row_stride : E;
    std::vector<float> x(B * N * ld, 0.0f);
    for (std::int64_t r = 0; r < B * N; ++r) std::copy_n(&p.x[r * E], E, &x[r * ld]);
    INFO("B=" << B << " N=" << N << " E=" << E << " Hq=" << Hq << " Hkv=" << Hkv << " D=" << D << " positions="
              << p.positions << " rope=" << p.rope << " alibi=" << p.alibi << " packed=" << packed);
    std::vector<float> first;
    for (Isa isa : testing::runnable_isas()) {
      for (int threads : {1, 2}) {
        CAPTURE(to_string(isa));
        CAPTURE(threads);
        config.attention.isa = isa;
        config.attention.threads = threads;
        MultiHeadSelfAttention layer(config, w);
        std::vector<float> y(B * N * ld, NAN);
        const MultiHeadStats stats = layer.forward({x.data(), {B, N, E}, {N * ld, ld, 1}}, {y.data(), {B, N, E}, {N * ld, ld, 1}});
        CHECK(stats.attention.isa == isa);
        CHECK(stats.projection_flops == 2.0 * B * N * E * ((Hq + 2 * Hkv) * D + Hq * D));
        std::vector<float> actual(B * N * E);
        for (std::int64_t r = 0; r < B * N; ++r) std::copy_n(&y[r * ld], E, &actual[r * E]);
        CHECK(testing::within_tolerance(actual, expected, 0, 0));
        if (threads == 1) first = actual;
        // oneDNN's GEMMs may split K differently per thread count: close, not bit-identical.
        if (threads == 2) CHECK(testing::within_tolerance(actual, std::vector<double>(first.begin(), first.end()), 0, 0));
        // A second forward on the same layer reuses its buffers and gives the same bits.
        std::vector<float> again(B * N * ld, NAN);
        layer.forward({x.data(), {B, N, E}, {N * ld, ld, 1}}, {again.data(), {B, N, E}, {N * ld, ld, 1}});
        for (std::int64_t r = 0; r < B * N; ++r) CHECK(std::memcmp(&again[r * ld], &y[r * ld], E * sizeof(float)) == 0);
      }
    }
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
