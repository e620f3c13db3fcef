// Soft-capping, attention sinks, sink keys and packed sequences against the fp64 reference, on
// every ISA path and 1 and 2 threads, through every schedule (bands, chunks, split keys).
#include <doctest/doctest.h>

#include <vector>

#include "tests/attention_tester.hpp"
#include "longattn/longattn.hpp"

using longattn::testing::Layout;
using longattn::testing::AttentionTester;

TEST_CASE("soft-capping: before position biases and masks, every normalizer with scores") {
  AttentionTester().n(300).d(64).softcap(5.0).check();
  AttentionTester().heads(4, 2).n(700).d(64).softcap(2.0).causal().alibi().check();
  AttentionTester().heads(2).n(500).d(32).softcap(1.0).window(60, 10).relative_bias(8).rope("half").check();
  AttentionTester().n(200).d(16).softcap(3.0).random_mask(0.5).score_bias(2, 0.1).check();
  AttentionTester().tokens(100, 400).d(16).softcap(4.0).additive(8).check();
  AttentionTester().n(300).d(32).softcap(0.5).value_range(8.0f).check();  // scores far past the cap
  for (const char* normalizer : {"sigmoid", "relu"}) {
    CAPTURE(normalizer);
    AttentionTester().heads(2).n(300).d(32).causal().softcap(3.0).normalizer(normalizer).check();
  }
  AttentionTester().heads(8, 2).tokens(1, 3000).d(64).softcap(10.0).chunk_bytes(64 << 10).check();  // decoding
  AttentionTester().heads(4, 2).n(600).d(64).causal().softcap(20.0).bf16_inputs().check();
}

TEST_CASE("sinks: one more logit per head in every denominator, with no value") {
  AttentionTester().heads(4).n(300).d(64).sinks().check();
  AttentionTester().heads(4, 2).n(700).d(32).sinks().window(16, 0).check();
  AttentionTester().batch(3).heads(2).n(200).d(16).sinks().key_lengths({200, 7, 0}).check();  // rows that see nothing
  AttentionTester().heads(2).n(300).d(16).sinks().random_mask(0.05).check();
  AttentionTester().heads(8, 2).tokens(1, 4000).d(64).sinks().chunk_bytes(64 << 10).check();  // split keys
  AttentionTester().heads(4, 4).tokens(100, 3000).d(32).sinks().packed_budget(64 << 10).check();  // chunks
  AttentionTester().heads(4, 2).n(500).d(64).sinks().causal().softcap(8.0).alibi().bf16_inputs().check();
  AttentionTester().heads(2).n(300).d(32).sinks().score_drift(0.2f).check();  // sinks far below the row max
}

TEST_CASE("sink keys: the first keys seen past a window's left edge, and nothing else") {
  AttentionTester().n(200).d(16).window(8, 0).sink_keys(4).check();
  AttentionTester().heads(4, 2).n(2000).d(64).window(100, 0).sink_keys(16).check();
  AttentionTester().n(1000).d(32).window(300, 50).sink_keys(400).check();  // sinks meeting the window
  AttentionTester().batch(2).n(600).d(32).window(64, 0).sink_keys(10).key_lengths({600, 5}).check();
  AttentionTester().tokens(83, 195).d(64).window(53, 19).sink_keys(1).key_lengths({6}).check();  // sinks alone
  // Many short heads, whose schedule would follow the thread count without sink keys.
  AttentionTester().batch(3).heads(8, 4).tokens(20, 371).d(93).window(214, 29).alibi().sink_keys(28).bf16_inputs()
      .check();
  // A position bias orders tiles by distance; the sink keys still run first, whether a band of
  // blocks hands them over as a chunk of their own or among the band's keys (the band's
  // bounds follow the thread count).
  AttentionTester().heads(2, 1).tokens(1378, 1378).d(4).window(63, 4).relative_bias(0).sink_keys(1).key_lengths({513})
      .check();
  AttentionTester().n(500).d(16).window(32, 32).sink_keys(7).random_mask(0.7).check();
  AttentionTester().n(700).d(16).window(20, 0).sink_keys(300).random_blocks(32, 64, 0.6).check();
  AttentionTester().heads(8, 2).tokens(3, 5000).d(64).window(256, 0).sink_keys(4).chunk_bytes(32 << 10).check();
  AttentionTester().heads(2).n(900).d(64).window(50, 0).sink_keys(4).sinks().rope("half").bf16_inputs().check();
}

TEST_CASE("packed sequences: each attends within itself at local positions") {
  AttentionTester().heads(4, 2).sequences({{100, 100}, {37, 37}, {0, 0}, {250, 250}, {1, 1}}).d(32).causal().check();
  AttentionTester().heads(2).sequences({{1, 300}, {1, 17}, {1, 1000}}).d(64).check();  // decoding several sequences
  AttentionTester().heads(4).sequences({{50, 80}, {30, 0}, {20, 20}}).d(16).sinks().check();  // a sequence without keys
  AttentionTester().heads(2).sequences({{300, 300}, {500, 500}}).d(64).window(40, 0).sink_keys(4).rope("half").check();
  AttentionTester().heads(4).sequences({{120, 120}, {80, 90}}).d(32).alibi().random_mask(0.6).score_bias(3).check();
  AttentionTester().heads(2).sequences({{200, 200}, {64, 64}}).d(32).causal().normalizer("linear").check();
  AttentionTester().heads(2).sequences({{200, 200}, {64, 64}}).d(32).causal().normalizer("sigmoid").check();
  AttentionTester().heads(4, 2).sequences({{90, 90}, {400, 400}}).d(64).causal().softcap(10.0).bf16_inputs().check();
  AttentionTester().heads(2).sequences({{60, 60}, {70, 70}}).d(16).layout(Layout::bnhd).causal().check();
}

TEST_CASE("packed sequences: the stats sum the sequences that ran, one without queries last") {
  using namespace longattn;
  std::vector<float> x(2 * 9 * 8, 0.5f), out(2 * 4 * 8);
  const std::vector<std::int64_t> cu_q = {0, 4, 4}, cu_k = {0, 4, 9};
  AttentionOptions o;
  o.cu_seqlens_q = cu_q, o.cu_seqlens_k = cu_k, o.window = Window::causal();
  for (int threads : {1, 2}) {
    o.threads = threads;
    const auto keys = bhnd<const float>(x.data(), 1, 2, 9, 8);
    const AttentionStats stats =
        attention(bhnd<const float>(x.data(), 1, 2, 4, 8), keys, keys, bhnd(out.data(), 1, 2, 4, 8), o);
    CHECK(stats.isa != Isa::automatic);
    CHECK(stats.visible_pairs == 2 * 10);  // 2 heads, 1 + 2 + 3 + 4 causal pairs
  }
}

TEST_CASE("long-context options: bad arguments are Errors naming them, nothing written") {
  using namespace longattn;
  std::vector<float> q(1 * 2 * 6 * 8, 0.5f), out(q.size(), 7.0f);
  const auto view = bhnd<const float>(q.data(), 1, 2, 6, 8);
  auto fails = [&](const AttentionOptions& options, const std::string& needle) {
    CAPTURE(needle);
    try {
      attention(view, view, view, bhnd(out.data(), 1, 2, 6, 8), options);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
    for (float x : out) CHECK(x == 7.0f);
  };
  AttentionOptions o;
  o.softcap = 0.0f;
  fails(o, "softcap: expected a finite number > 0");
  o.softcap = NAN;
  fails(o, "softcap: expected a finite number > 0");
  o = {};
  const std::vector<float> one_sink = {1.0f}, nan_sinks = {0.0f, NAN};
  o.sinks = one_sink;
  fails(o, "sinks: expected 2 logits (one per query head), got 1");
  o.sinks = nan_sinks;
  fails(o, "sinks[1]: expected a number, got NaN");
  o = {};
  o.sink_keys = -1;
  fails(o, "sink_keys: expected >= 0");
  o = {};
  const std::vector<std::int64_t> cu = {0, 4, 6}, descending = {0, 5, 3, 6}, short_end = {0, 5}, two = {0, 6};
  o.cu_seqlens_q = cu;
  fails(o, "cu_seqlens_k: expected as many offsets as cu_seqlens_q (3), got 0");
  o.cu_seqlens_q = descending, o.cu_seqlens_k = descending;
  fails(o, "cu_seqlens_q[2]: expected non-decreasing offsets, got 3 after 5");
  o.cu_seqlens_q = short_end, o.cu_seqlens_k = short_end;
  fails(o, "cu_seqlens_q[1]: expected 6 (q's tokens), got 5");
  const std::vector<std::int64_t> lengths = {6};
  o.cu_seqlens_q = two, o.cu_seqlens_k = two, o.key_lengths = lengths;
  fails(o, "packed sequences take no key_lengths");
  o = {};
  o.normalizer = Normalizer::sigmoid;
  const std::vector<float> sinks = {0.0f, 1.0f};
  o.sinks = sinks;
  fails(o, "sinks: join a softmax's denominator; softmax only");
}
