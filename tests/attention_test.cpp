// The kernel against the fp64 reference: every ISA path, threads 1 and 2, awkward sizes.
#include <doctest/doctest.h>

#include <random>

#include "tests/attention_tester.hpp"

using longattn::testing::AttentionTester;
using longattn::testing::Layout;

TEST_CASE("full attention, odd and vector-edge sizes") {
  for (std::int64_t n : {1, 7, 63, 64, 65}) {
    for (std::int64_t d : {1, 3, 64, 80, 128, 256}) {
      CAPTURE(n);
      CAPTURE(d);
      AttentionTester().n(n).d(d).heads(2).check();
    }
  }
}

TEST_CASE("long sequences: n = 1000 and 4099") {
  for (std::int64_t d : {1, 3, 64, 80, 128, 256}) {
    CAPTURE(d);
    AttentionTester().n(1000).d(d).check();
  }
  for (std::int64_t d : {3, 64, 80}) {
    CAPTURE(d);
    AttentionTester().n(4099).d(d).check();
  }
}

TEST_CASE("causal, bottom-right aligned") {
  AttentionTester().n(1000).d(64).causal().check();
  AttentionTester().n(4099).d(80).causal().check();
  AttentionTester().tokens(7, 1000).d(64).causal().check();   // a few new queries, long prefix
  AttentionTester().tokens(1, 4099).d(128).causal().check();  // decode
  AttentionTester().tokens(300, 100).d(16).causal().check();  // queries before key 0 see nothing
}

TEST_CASE("windows, including 0, 1 and wider than n") {
  AttentionTester().n(1000).d(64).window(0, 0).check();
  AttentionTester().n(1000).d(32).window(1, 1).check();
  AttentionTester().n(1000).d(64).window(256, 256).check();
  AttentionTester().n(700).d(8).window(5, 300).check();
  AttentionTester().n(65).d(64).window(5000, 5000).check();
  AttentionTester().tokens(50, 600).d(64).window(-1, 3).check();
}

TEST_CASE("grouped-query heads, batches, Dv != D, custom scale") {
  AttentionTester().batch(2).heads(8, 2).n(130).d(64).check();
  AttentionTester().batch(3).heads(4, 1).n(97).d(32).causal().check();
  AttentionTester().n(200).dims(64, 40).check();
  AttentionTester().n(200).dims(3, 130).causal().check();
  AttentionTester().n(300).d(64).scale(0.5).check();
}

TEST_CASE("BNHD layout is read and written in place") {
  AttentionTester().batch(2).heads(4, 2).n(300).d(64).layout(Layout::bnhd).check();
  AttentionTester().heads(3).n(129).dims(80, 24).causal().layout(Layout::bnhd).check();
}

TEST_CASE("large logits stay exact") {
  AttentionTester().n(500).d(64).value_range(6.0f).check();
}

TEST_CASE("random shapes, windows and layouts (seeded)") {
  std::mt19937 rng(20261126);
  auto pick = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  for (int trial = 0; trial < 24; ++trial) {
    const std::int64_t hkv = pick(1, 3), hq = hkv * pick(1, 3);
    const std::int64_t nk = pick(1, 400), nq = pick(1, 2) == 1 ? nk : pick(1, 400);
    const std::int64_t left = pick(-1, 3) == -1 ? -1 : pick(0, 300);
    const std::int64_t right = pick(-1, 3) == -1 ? -1 : pick(0, 300);
    CAPTURE(trial);
    AttentionTester()
        .batch(pick(1, 2))
        .heads(hq, hkv)
        .tokens(nq, nk)
        .dims(pick(1, 96), pick(1, 96))
        .window(left, right)
        .layout(pick(0, 1) == 0 ? Layout::bhnd : Layout::bnhd)
        .seed(static_cast<unsigned>(trial))
        .check();
  }
}
