// Positional encodings against the fp64 reference (every ISA path, threads 1 and 2), and the
// properties that define them: RoPE's dependence on relative position alone, ALiBi's slopes,
// the sinusoidal table.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "longattn/attention.hpp"
#include "longattn/positional.hpp"
#include "tests/attention_tester.hpp"
#include "check/reference_attention.hpp"

using longattn::testing::AttentionTester;
using longattn::testing::Layout;

TEST_CASE("RoPE: both pairings, odd sizes, positions past the table's first rows, every layout") {
  for (const char* pairing : {"half", "interleaved"}) {
    CAPTURE(pairing);
    AttentionTester().n(7).d(2).rope(pairing).check();
    AttentionTester().n(1000).d(64).rope(pairing).check();
    AttentionTester().n(700).d(80).rope(pairing, 500000).causal().check();
    AttentionTester().batch(2).heads(4, 2).n(300).d(32).rope(pairing).layout(Layout::bnhd).check();
    AttentionTester().n(200).d(16).rope(pairing).layout(Layout::bhdn).window(20, 20).check();
    AttentionTester().tokens(3, 4099).d(64).rope(pairing).causal().check();   // decode at position 4098
    AttentionTester().tokens(300, 100).d(8).rope(pairing).check();            // queries at negative positions
    AttentionTester().n(1000).d(64).rope(pairing).packed_budget(64 << 10).check();  // keys rotated chunk by chunk
    AttentionTester().n(300).d(32).rope(pairing).normalizer("sigmoid").check();
  }
}

TEST_CASE("RoPE's scores depend on the relative position alone") {
  // ⟨rope(q, p), rope(k, p + δ)⟩ is the same for every p: run one query against one key at
  // offsets δ with the pair placed at different absolute positions, compare lse (= the score).
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const std::int64_t d = 32;
  std::vector<float> q(d), k(d);
  for (float& x : q) x = normal(rng);
  for (float& x : k) x = normal(rng);
  for (const char* pairing : {"half", "interleaved"}) {
    for (std::int64_t delta : {0, 1, 5, 40}) {
      std::vector<double> scores;
      for (std::int64_t p : {0, 3, 100, 1000, 5000}) {
        // The query sits at p + δ (the last of Nk = p + δ + 1 keys); a mask shows it key p only.
        const std::int64_t nk = p + delta + 1;
        std::vector<float> keys(nk * d, 0.0f), values(nk, 1.0f), out(1);
        std::vector<std::uint8_t> mask(nk, 0);
        mask[p] = 1;
        std::copy(k.begin(), k.end(), keys.begin() + p * d);
        float lse = 0;
        longattn::AttentionOptions options;
        options.rope = {longattn::parse_rope_pairing(pairing), 10000};
        options.mask = {mask.data(), {1, nk}, {nk, 1}};
        options.scale = 1.0f;
        longattn::attention(longattn::bhnd<const float>(q.data(), 1, 1, 1, d),
                            longattn::bhnd<const float>(keys.data(), 1, 1, nk, d),
                            longattn::bhnd<const float>(values.data(), 1, 1, nk, 1),
                            longattn::bhnd(out.data(), 1, 1, 1, 1), options, longattn::bhn(&lse, 1, 1, 1));
        scores.push_back(lse);
      }
      CAPTURE(pairing);
      CAPTURE(delta);
      for (double s : scores) CHECK(s == doctest::Approx(scores[0]).epsilon(1e-5));
    }
  }
}

TEST_CASE("ALiBi: slopes for H = 1 ... 16, and attention with them") {
  for (std::int64_t h = 1; h <= 16; ++h) {
    const std::vector<double> expected = longattn::reference::alibi_slopes(h), actual = longattn::alibi_slopes(h);
    REQUIRE(actual.size() == static_cast<std::size_t>(h));
    for (std::int64_t i = 0; i < h; ++i) CHECK(actual[i] == doctest::Approx(expected[i]).epsilon(1e-15));
  }
  CHECK(longattn::alibi_slopes(8)[0] == 0.5);  // the paper's H = 8: 1/2, 1/4, ..., 1/256
  CHECK(longattn::alibi_slopes(8)[7] == 1.0 / 256);
  AttentionTester().heads(6).n(1000).d(64).alibi().check();
  AttentionTester().heads(8, 2).n(700).d(80).alibi().causal().check();
  AttentionTester().heads(3).tokens(5, 4099).d(64).alibi().causal().check();
  AttentionTester().heads(5).n(600).d(32).alibi().window(50, 50).key_lengths({500}).check();
  AttentionTester().heads(4).n(1000).d(16).alibi().packed_budget(32 << 10).check();
  AttentionTester().heads(2).n(300).d(16).alibi().normalizer("relu").random_mask(0.5).check();
}

TEST_CASE("relative position bias: clipped per-head tables, with masks and windows") {
  AttentionTester().heads(3).n(40).d(16).relative_bias(4).check();
  AttentionTester().heads(4, 2).n(1000).d(64).relative_bias(128).causal().check();
  AttentionTester().heads(2).n(500).d(32).relative_bias(0).check();  // one entry: a constant bias
  AttentionTester().heads(2).tokens(50, 900).d(32).relative_bias(600).window(300, 10).check();
  AttentionTester().heads(2).n(300).d(32).relative_bias(16).alibi().rope("half").random_blocks(64, 64, 0.5).check();
  AttentionTester().heads(2).n(300).d(32).relative_bias(8).normalizer("sigmoid").layout(Layout::bnhd).check();
}

TEST_CASE("random shapes with every encoding (seeded)") {
  std::mt19937 rng(3);
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  for (int trial = 0; trial < 12; ++trial) {
    const std::int64_t hkv = pick(1, 3), hq = hkv * pick(1, 3), nk = pick(1, 500), nq = pick(0, 1) ? nk : pick(1, 500);
    AttentionTester tester;
    tester.heads(hq, hkv).tokens(nq, nk).dims(2 * pick(1, 48), pick(1, 70)).seed(trial);
    if (pick(0, 1)) tester.rope(pick(0, 1) ? "half" : "interleaved", pick(0, 1) ? 10000 : 1e6);
    if (pick(0, 1)) tester.alibi();
    if (pick(0, 1)) tester.relative_bias(pick(0, 300));
    if (pick(0, 1)) tester.window(pick(-1, 200), pick(-1, 200));
    CAPTURE(trial);
    tester.check();
  }
}

TEST_CASE("sinusoidal table: the formula, odd d") {
  const std::vector<float> t = longattn::sinusoidal_table(50, 7);
  for (std::int64_t p = 0; p < 50; ++p) {
    for (std::int64_t c = 0; c < 7; ++c) {
      const double angle = double(p) / std::pow(10000.0, double(c - c % 2) / 7.0);
      CHECK(t[p * 7 + c] == doctest::Approx(c % 2 == 0 ? std::sin(angle) : std::cos(angle)).epsilon(1e-6));
    }
  }
}

TEST_CASE("positions: a slice of a longer sequence, its windows, RoPE and biases at its own positions") {
  // Queries 100 … 199 against keys 50 … 249 of one sequence: causal, windows, RoPE, ALiBi.
  AttentionTester().tokens(100, 200).d(64).positions(100, 50).causal().check();
  AttentionTester().tokens(100, 200).d(64).positions(100, 50).window(30, 10).rope("half").check();
  AttentionTester().tokens(100, 200).d(32).positions(100, 50).alibi().relative_bias(8).check();
  // Queries wholly before or after the keys: nothing seen, or everything.
  AttentionTester().tokens(64, 64).d(16).positions(0, 1000).causal().check();
  AttentionTester().tokens(64, 64).d(16).positions(5000, 0).causal().rope("interleaved", 500000).check();
  // Decoding at a position far into a sequence, and a chunk of prefill after a cached prefix.
  AttentionTester().tokens(1, 3000).d(128).positions(70000, 67001).window(1000, 0).rope("half").check();
  AttentionTester().tokens(200, 900).d(64).positions(700, 0).causal().rope("half").check();
  AttentionTester().tokens(200, 900).d(64).positions(700, 0).causal().bf16_inputs().check();
  AttentionTester().tokens(150, 150).d(8).dims(8, 8).positions(40, 0).causal().normalizer("linear").check();
}
