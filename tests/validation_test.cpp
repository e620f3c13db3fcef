// Every class of bad argument throws longattn::Error naming it, and writes nothing.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <array>
#include <functional>
#include <string>
#include <vector>

#include "longattn/longattn.hpp"

using namespace longattn;

namespace {

struct Call {
  std::vector<float> qd = std::vector<float>(2 * 4 * 8 * 16, 0.5f);
  std::vector<float> kd = std::vector<float>(2 * 2 * 8 * 16, 0.5f);
  std::vector<float> vd = std::vector<float>(2 * 2 * 8 * 16, 0.5f);
  std::vector<float> od = std::vector<float>(2 * 4 * 8 * 16, 7.0f);
  std::vector<float> ld = std::vector<float>(2 * 4 * 8, 7.0f);
  HeadsView<const float> q = bhnd<const float>(qd.data(), 2, 4, 8, 16);
  HeadsView<const float> k = bhnd<const float>(kd.data(), 2, 2, 8, 16);
  HeadsView<const float> v = bhnd<const float>(vd.data(), 2, 2, 8, 16);
  HeadsView<float> out = bhnd(od.data(), 2, 4, 8, 16);
  TensorView<float, 3> lse = bhn(ld.data(), 2, 4, 8);
  AttentionOptions options;

  void run() { attention(q, k, v, out, options, lse); }
  bool untouched() const {
    for (float x : od) if (x != 7.0f) return false;
    for (float x : ld) if (x != 7.0f) return false;
    return true;
  }
};

// Applies `spoil` to a valid call and expects an Error whose message contains `needle`.
void expect_error(const std::function<void(Call&)>& spoil, const std::string& needle) {
  Call c;
  spoil(c);
  CAPTURE(needle);
  try {
    c.run();
    FAIL("no error thrown");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find(needle) != std::string::npos);
  }
  CHECK(c.untouched());
}

}  // namespace

TEST_CASE("a valid call runs") {
  Call c;
  c.run();
  CHECK(c.od[0] == doctest::Approx(0.5f));
}

TEST_CASE("shape mismatches name the argument, expected and actual") {
  expect_error([](Call& c) { c.k.shape[0] = 3; }, "k.shape[0] (batch): expected 2 (q's batch), got 3");
  expect_error([](Call& c) { c.k.shape[3] = 8; }, "k.shape[3] (features): expected 16");
  expect_error([](Call& c) { c.v.shape[2] = 4; }, "v.shape[2] (tokens): expected 8 (k's tokens), got 4");
  expect_error([](Call& c) { c.v.shape[1] = 1; }, "v.shape[1] (heads): expected 2");
  expect_error([](Call& c) { c.out.shape[3] = 8; }, "out.shape[3] (features): expected 16 (v's features), got 8");
  expect_error([](Call& c) { c.out.shape[2] = 9; }, "out.shape[2] (tokens)");
  expect_error([](Call& c) { c.lse.shape[2] = 3; }, "lse.shape[2]: expected 8");
}

TEST_CASE("heads, features and windows") {
  expect_error([](Call& c) { c.k.shape[1] = c.v.shape[1] = 3; }, "expected a divisor of q's 4 heads");
  expect_error([](Call& c) { c.q.shape[3] = c.k.shape[3] = 0; }, "q.shape[3] (features): expected >= 1, got 0");
  expect_error([](Call& c) { c.q.shape[1] = 0; }, "q.shape[1] (heads): expected >= 1");
  expect_error([](Call& c) { c.options.window = {-2, 0}; }, "window: expected left and right >= -1");
  expect_error([](Call& c) { c.options.window = {0, -5}; }, "got (0, -5)");
  expect_error([](Call& c) { c.options.scale = std::nanf(""); }, "scale: expected a finite number");
  expect_error([](Call& c) { c.options.threads = -1; }, "threads: expected >= 0");
}

TEST_CASE("key lengths, masks and block-sparse layouts") {
  static const std::int64_t two[] = {8, 3}, one[] = {8}, negative[] = {8, -1}, long_[] = {9, 8};
  expect_error([](Call& c) { c.options.key_lengths = one; }, "key_lengths: expected one length per batch (2), got 1");
  expect_error([](Call& c) { c.options.key_lengths = negative; }, "key_lengths[1]: expected 0 ... 8 (k's tokens), got -1");
  expect_error([](Call& c) { c.options.key_lengths = long_; }, "key_lengths[0]: expected 0 ... 8 (k's tokens), got 9");
  static std::uint8_t mask[8 * 8] = {};
  expect_error([](Call& c) { c.options.mask = {mask, {8, 7}, {7, 1}}; }, "mask.shape: expected [8, 8] ([q tokens, k tokens]), got [8, 7]");
  expect_error([](Call& c) { c.options.mask = {nullptr, {8, 8}, {8, 1}}; }, "mask.data: expected a pointer, got null");
  static const std::array<std::int64_t, 2> tiles[] = {{0, 0}, {2, 1}};
  expect_error([](Call& c) { c.options.block_sparse = {4, 0, {}}; }, "block_sparse: expected block_q and block_k >= 1, got 4 and 0");
  expect_error([](Call& c) { c.options.block_sparse = {4, 4, tiles}; }, "block_sparse.visible[1]: expected a tile in [0, 2) x [0, 2), got (2, 1)");
  Call ok;
  ok.options.key_lengths = two;
  ok.run();
}

TEST_CASE("normalizers: what each one allows") {
  expect_error([](Call& c) { c.options.normalizer = Normalizer::sigmoid; }, "lse: defined for the softmax normalizer only, got sigmoid");
  expect_error([](Call& c) { c.lse = {}; c.options.normalizer = Normalizer::linear; c.options.window = {4, 4}; },
               "window: linear attention runs full (-1, -1) or causal (-1, 0), got (4, 4)");
  static std::uint8_t mask[8 * 8] = {};
  expect_error([](Call& c) { c.lse = {}; c.options.normalizer = Normalizer::linear; c.options.mask = {mask, {8, 8}, {8, 1}}; },
               "normalizer: linear attention has no scores to mask");
  expect_error([](Call& c) { c.lse = {}; c.options.normalizer = Normalizer::sigmoid; c.options.sigmoid_bias = INFINITY; },
               "sigmoid_bias: expected a finite number");
  CHECK_THROWS_AS(parse_normalizer("softermax"), Error);
  static const float weights[3 * 16] = {}, w[3] = {1, 2, 3};
  expect_error([](Call& c) { c.options.additive = {{weights, {3, 8}, {8, 1}}, {weights, {3, 16}, {16, 1}}, w}; },
               "additive.wq.shape: expected [3, 16] ([Da, D]), got [3, 8]");
  expect_error([](Call& c) { c.options.additive = {{weights, {3, 16}, {16, 1}}, {nullptr, {3, 16}, {16, 1}}, w}; },
               "additive.wk.data: expected a pointer, got null");
  expect_error([](Call& c) { c.options.additive = {{weights, {3, 16}, {16, 1}}, {weights, {3, 16}, {16, 1}}, {}}; },
               "additive.w: expected Da >= 1 weights");
}

TEST_CASE("pointers, strides, sizes and aliasing") {
  expect_error([](Call& c) { c.q.data = nullptr; }, "q.data: expected a pointer, got null");
  expect_error([](Call& c) { c.out.data = nullptr; }, "out.data: expected a pointer");
  expect_error([](Call& c) { c.k.strides[2] = -16; }, "k.strides[2]: expected >= 0, got -16");
  expect_error([](Call& c) { c.q.shape[0] = -1; }, "q.shape[0]: expected >= 0");
  expect_error([](Call& c) { c.q.strides[0] = std::int64_t{1} << 62; }, "q: extent in bytes overflows");
  expect_error([](Call& c) { c.q.strides[1] = std::int64_t{1} << 62; }, "q: shape and strides address more than 2^63");
  expect_error([](Call& c) { c.out.data = c.od.data(); c.q.data = c.od.data(); }, "out: must not overlap q");
  expect_error([](Call& c) { c.lse.data = c.od.data(); }, "lse: must not overlap out");
  expect_error([](Call& c) { c.out.strides[2] = 0; }, "out.strides[2]: expected > ");
}

TEST_CASE("an ISA the CPU lacks or an unknown name is a clear error") {
  CHECK_THROWS_AS(parse_isa("sse9"), Error);
  CHECK(parse_isa("avx2") == Isa::avx2);
  setenv("LONGATTN_ISA", "neon", 1);
  expect_error([](Call&) {}, "LONGATTN_ISA: expected avx512, avx2 or scalar, got \"neon\"");
  unsetenv("LONGATTN_ISA");
}

TEST_CASE("empty sequences are valid: no keys means zero rows and lse = -inf") {
  std::vector<float> q(1 * 2 * 3 * 4, 1.0f), out(1 * 2 * 3 * 4, 7.0f), lse(6, 7.0f);
  float dummy = 0;
  attention(bhnd<const float>(q.data(), 1, 2, 3, 4), bhnd<const float>(&dummy, 1, 1, 0, 4),
            bhnd<const float>(&dummy, 1, 1, 0, 4), bhnd(out.data(), 1, 2, 3, 4), {},
            bhn(lse.data(), 1, 2, 3));
  for (float x : out) CHECK(x == 0.0f);
  for (float x : lse) CHECK(x == -INFINITY);
  // No queries: nothing to write, for attention() and a plan, whatever the zero strides say.
  std::vector<float> k(1 * 2 * 5 * 4, 1.0f);
  const auto keys = bhnd<const float>(k.data(), 1, 2, 5, 4);
  CHECK(attention(bhnd<const float>(&dummy, 1, 2, 0, 4), keys, keys, bhnd(&dummy, 1, 2, 0, 4), {},
                  bhn(&dummy, 1, 2, 0)).visible_pairs == 0);
  const AttentionPlan plan({.q_heads = 2, .kv_heads = 2, .nq = 0, .nk = 5, .d = 4});
  CHECK(plan.run(bhnd<const float>(&dummy, 1, 2, 0, 4), keys, keys, bhnd(&dummy, 1, 2, 0, 4)).visible_pairs == 0);
  CHECK(dummy == 0.0f);
  // No batch at all, with every normalizer, full and causal.
  for (Normalizer normalizer : {Normalizer::softmax, Normalizer::sigmoid, Normalizer::relu, Normalizer::linear}) {
    for (Window window : {Window{}, Window::causal()}) {
      AttentionOptions options;
      options.normalizer = normalizer, options.window = window;
      const auto none = bhnd<const float>(k.data(), 0, 2, 5, 4);
      CHECK(attention(none, none, none, bhnd(&dummy, 0, 2, 5, 4), options).visible_pairs == 0);
    }
  }
}

TEST_CASE("positional encodings: odd D with RoPE, bad base, tables of the wrong shape, linear") {
  const std::vector<float> table(4 * 9, 0.1f);
  expect_error([](Call& c) {
    c.q.shape[3] = c.k.shape[3] = 15;
    c.options.rope.pairing = RopePairing::half;
  }, "rope: rotates pairs of features, expected an even D, got 15");
  expect_error([](Call& c) { c.options.rope = {RopePairing::interleaved, 0.0}; }, "rope.base: expected a finite number > 0");
  expect_error([&](Call& c) { c.options.relative_bias = {table.data(), {3, 9}, {9, 1}}; },
               "relative_bias.shape: expected [4, 2K+1] ([q heads, odd offsets]), got [3, 9]");
  expect_error([&](Call& c) { c.options.relative_bias = {table.data(), {4, 8}, {8, 1}}; },
               "relative_bias.shape: expected [4, 2K+1]");
  expect_error([&](Call& c) { c.options.relative_bias = {nullptr, {4, 9}, {9, 1}}; }, "relative_bias.data");
  expect_error([](Call& c) {
    c.options.normalizer = Normalizer::linear;
    c.options.alibi = true;
    c.lse = {};
  }, "linear attention has no scores for RoPE, ALiBi, a relative bias or a score bias");
  const std::vector<float> bias(8 * 8, 0.0f);
  expect_error([&](Call& c) { c.options.score_bias = {bias.data(), {2, 4, 8, 7}, {0, 0, 8, 1}}; },
               "score_bias.shape: expected [2, 4, 8, 8] ([batch, q heads, q tokens, k tokens]; stride 0 to share a "
               "dimension), got [2, 4, 8, 7]");
  expect_error([&](Call& c) { c.options.score_bias = {nullptr, {2, 4, 8, 8}, {0, 0, 8, 1}}; }, "score_bias.data");
  expect_error([&](Call& c) { c.options.score_bias = {bias.data(), {2, 4, 8, 8}, {0, -1, 8, 1}}; },
               "score_bias.strides[1]: expected >= 0");
  expect_error([&](Call& c) {
    c.options.normalizer = Normalizer::linear;
    c.options.score_bias = {bias.data(), {2, 4, 8, 8}, {0, 0, 8, 1}};
    c.lse = {};
  }, "linear attention has no scores");
  CHECK_THROWS_AS(parse_rope_pairing("neox"), Error);
  CHECK_THROWS_AS(alibi_slopes(0), Error);
}

TEST_CASE("a problem whose tables or scratch outgrow memory is an Error before anything is written") {
  // 2^50 keys, each one broadcast key (stride 0): RoPE's table for 2^50 positions cannot be made.
  const std::int64_t n = std::int64_t{1} << 50;
  AttentionOptions options;
  options.rope.pairing = RopePairing::half;
  auto out_of_memory = [](const std::function<void()>& call) {
    try {
      call();
      FAIL("no error thrown");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("out of memory") != std::string::npos);
    }
  };
  out_of_memory([&] { AttentionPlan({.batch = 1, .q_heads = 1, .kv_heads = 1, .nq = 1, .nk = n, .d = 64}, options); });
  std::vector<float> q(64, 1.0f), kv(64, 0.5f), out(64, 7.0f), lse(1, 7.0f);
  out_of_memory([&] {
    attention(HeadsView<const float>{q.data(), {1, 1, 1, 64}, {64, 64, 64, 1}},
              HeadsView<const float>{kv.data(), {1, 1, n, 64}, {0, 0, 0, 1}},
              HeadsView<const float>{kv.data(), {1, 1, n, 64}, {0, 0, 0, 1}},
              HeadsView<float>{out.data(), {1, 1, 1, 64}, {64, 64, 64, 1}}, options, bhn(lse.data(), 1, 1, 1));
  });
  CHECK(std::all_of(out.begin(), out.end(), [](float x) { return x == 7.0f; }));
  CHECK(lse[0] == 7.0f);
}
