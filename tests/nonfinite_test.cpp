// NaN and ±inf in the inputs, on every ISA path, against the fp64 reference's IEEE arithmetic
// (README "Non-finite values"): a NaN reaches exactly the rows that see it, a key no rule lets
// a row see never affects that row.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "tests/attention_tester.hpp"

using longattn::testing::AttentionTester;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

}  // namespace

TEST_CASE("a NaN in a query row makes that row NaN, under every normalizer") {
  for (std::string normalizer : {"softmax", "sigmoid", "relu", "linear"}) {
    CAPTURE(normalizer);
    AttentionTester().n(200).d(64).heads(2).normalizer(normalizer).poison('q', 0, 1, 77, 5, kNaN).check();
    AttentionTester().n(200).d(64).causal().normalizer(normalizer).poison('q', 0, 0, 150, 63, kNaN).check();
  }
  // ±inf in a query: its scores are ±inf or NaN, and the row NaN (inf - inf in the softmax).
  AttentionTester().n(130).d(32).poison('q', 0, 0, 9, 0, kInf).check();
  AttentionTester().n(130).d(32).poison('q', 0, 0, 9, 3, -kInf).check();
}

TEST_CASE("a NaN in a key or value reaches the rows that see it and no other") {
  for (std::string normalizer : {"softmax", "sigmoid", "relu", "linear"}) {
    CAPTURE(normalizer);
    AttentionTester().n(300).d(64).causal().normalizer(normalizer).poison('k', 0, 0, 150, 7, kNaN).check();
    AttentionTester().n(300).d(64).causal().normalizer(normalizer).poison('v', 0, 0, 150, 7, kNaN).check();
  }
  // Keys a window, the causal diagonal or a sliding window's edge hides, in partial tiles.
  AttentionTester().n(700).d(64).window(40, 0).poison('v', 0, 0, 200, 0, kNaN).poison('k', 0, 0, 500, 1, kNaN).check();
  AttentionTester().n(700).d(32).window(3, 3).poison('v', 0, 0, 345, 31, kNaN).check();
  AttentionTester().n(257).d(64).causal().poison('v', 0, 0, 100, 0, kInf).check();
  // Grouped heads: every query head of the group sees the poisoned key-value head.
  AttentionTester().heads(4, 2).n(160).d(64).causal().poison('v', 0, 1, 60, 2, kNaN).check();
}

TEST_CASE("values and keys no rule lets a row see never affect it") {
  // A cache past each sequence's length holding NaN, as an uninitialised one may.
  AttentionTester()
      .batch(2)
      .tokens(1, 1000)
      .d(64)
      .key_lengths({700, 1000})
      .poison('v', 0, 0, 700, 0, kNaN)
      .poison('k', 0, 0, 701, 0, kNaN)
      .poison('v', 0, 0, 999, 63, kInf)
      .check();
  AttentionTester()
      .tokens(96, 300)
      .d(64)
      .key_lengths({250})
      .poison('v', 0, 0, 251, 5, kNaN)
      .poison('k', 0, 0, 255, 5, kNaN)
      .check();
  // An element mask and a block-sparse layout: some rows see the poisoned key, some do not.
  AttentionTester().n(200).d(64).random_mask(0.5).poison('v', 0, 0, 33, 0, kNaN).check();
  AttentionTester().n(200).d(64).random_mask(0.5).poison('k', 0, 0, 170, 1, kNaN).check();
  AttentionTester().n(256).d(64).random_blocks(32, 32, 0.5).poison('v', 0, 0, 100, 0, kNaN).check();
}

TEST_CASE("non-finite inputs through chunks, key splits, position terms and bf16") {
  AttentionTester().n(1200).d(64).causal().packed_budget(64 << 10).poison('v', 0, 0, 900, 0, kNaN).check();
  AttentionTester().tokens(1, 5000).d(128).causal().poison('k', 0, 0, 4000, 0, kNaN).check();  // decode
  AttentionTester().tokens(1, 5000).d(128).key_lengths({3000}).poison('v', 0, 0, 3001, 0, kNaN).check();
  AttentionTester().n(300).d(64).causal().alibi().poison('k', 0, 0, 100, 0, kNaN).check();
  AttentionTester().n(300).d(64).relative_bias(16).poison('q', 0, 0, 10, 0, kNaN).check();
  AttentionTester().n(300).d(64).causal().rope("half").poison('k', 0, 0, 100, 0, kNaN).check();
  AttentionTester().n(200).d(64).additive(16).causal().poison('k', 0, 0, 50, 0, kNaN).check();
  AttentionTester().n(300).d(64).causal().bf16_inputs().poison('v', 0, 0, 100, 0, kNaN).check();
  AttentionTester().n(300).d(64).causal().bf16_inputs().poison('k', 0, 0, 200, 3, kNaN).check();
  AttentionTester().n(300).d(64).causal().bf16_inputs().poison('q', 0, 0, 20, 3, kNaN).check();
  AttentionTester().tokens(1, 2000).d(64).key_lengths({1500}).bf16_inputs().poison('v', 0, 0, 1600, 0, kNaN).check();
  AttentionTester().n(300).d(64).causal().bf16_keys_values().poison('v', 0, 0, 100, 0, kNaN).check();
}
