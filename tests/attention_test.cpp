// The kernel against the fp64 reference: every ISA path, threads 1 and 2, awkward sizes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "engine/attention_validation.hpp"
#include "engine/flash_attention.hpp"
#include "longattn/attention.hpp"
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

TEST_CASE("BNHD layout is read and written in place, and so is any stride") {
  AttentionTester().batch(2).heads(4, 2).n(300).d(64).layout(Layout::bnhd).check();
  AttentionTester().heads(3).n(129).dims(80, 24).causal().layout(Layout::bnhd).check();
  AttentionTester().batch(2).heads(2, 1).n(200).dims(37, 20).layout(Layout::bhdn).check();
}

TEST_CASE("large logits stay exact") {
  AttentionTester().n(500).d(64).value_range(6.0f).check();
}

TEST_CASE("windows narrow against n: keys packed per band of query blocks, as they are needed") {
  // A query block sees at most a quarter of the keys: each task packs, into a buffer of its
  // own, the panels its consecutive blocks see, block by block.
  AttentionTester().n(4099).d(64).window(256, 256).check();
  AttentionTester().n(3000).d(80).window(0, 0).check();
  AttentionTester().tokens(1000, 4099).d(1).window(300, 0).check();  // bottom-right aligned
  AttentionTester().tokens(4099, 1500).d(3).window(20, 40).check();
  AttentionTester().batch(2).heads(4, 2).n(2500).dims(48, 24).window(100, 30).layout(Layout::bnhd).check();
  AttentionTester().batch(3).heads(2).n(2000).d(64).window(200, 200).key_lengths({2000, 0, 1111}).check();
  AttentionTester().heads(2).n(2500).d(64).window(64, 64).alibi().rope("half").check();
  AttentionTester().heads(4, 1).n(2600).d(32).window(50, 50).normalizer("sigmoid").check();
  AttentionTester().n(1500).dims(16, 8).additive(24).window(40, 40).layout(Layout::bhdn).check();
  AttentionTester().n(2000).d(32).window(100, 100).random_mask(0.5).check();
}

TEST_CASE("many short heads: each head packed and run as one band") {
  // Heads whose keys fit one chunk, at least 8 per thread, take run_bands; with 8-15 heads one
  // thread does and two threads take the chunked path, whose bits the tester compares.
  AttentionTester().batch(3).heads(4).n(300).d(64).check();            // 12 heads
  AttentionTester().batch(4).heads(8, 2).n(200).d(128).causal().check();  // 8 kv heads
  AttentionTester().batch(2).heads(12).tokens(100, 700).dims(80, 40).key_lengths({700, 333}).check();
  AttentionTester().batch(5).heads(4).n(97).d(3).layout(Layout::bnhd).check();  // 20 heads
  AttentionTester().batch(2).heads(8, 4).n(150).d(32).causal().rope("half").alibi().check();
  AttentionTester().batch(4).heads(4).n(130).d(16).random_mask(0.4).normalizer("sigmoid").check();
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
    const std::int64_t batch = pick(1, 2);
    std::vector<std::int64_t> lengths;
    if (pick(0, 2) == 0) {
      for (std::int64_t b = 0; b < batch; ++b) lengths.push_back(pick(0, nk));
    }
    AttentionTester tester;
    if (pick(0, 3) == 0) tester.random_mask(pick(0, 10) / 10.0);
    if (pick(0, 3) == 0) tester.random_blocks(pick(1, 100), pick(1, 100), pick(0, 10) / 10.0);
    tester.key_lengths(lengths)
        .batch(batch)
        .heads(hq, hkv)
        .tokens(nq, nk)
        .dims(pick(1, 96), pick(1, 96))
        .window(left, right)
        .layout(static_cast<Layout>(pick(0, 2)))
        .seed(static_cast<unsigned>(trial))
        .check();
  }
}

TEST_CASE("key padding: per-batch lengths, including 0 and Nk") {
  AttentionTester().batch(4).heads(2).n(300).d(64).key_lengths({0, 1, 150, 300}).check();
  AttentionTester().batch(3).heads(4, 2).n(700).d(32).causal().key_lengths({700, 257, 5}).check();
  AttentionTester().batch(2).tokens(64, 1000).d(80).window(100, 3).key_lengths({999, 640}).check();
}

TEST_CASE("explicit masks: dense, sparse, empty rows, composed with windows and padding") {
  AttentionTester().n(300).d(64).random_mask(0.5).check();
  AttentionTester().n(500).d(16).random_mask(0.02).check();
  AttentionTester().tokens(100, 700).d(64).random_mask(0.9).causal().check();
  AttentionTester().batch(2).n(400).d(32).random_mask(0.3).window(50, 50).key_lengths({400, 123}).check();
  AttentionTester().n(200).d(8).random_mask(0.0).check();  // nothing visible anywhere
  AttentionTester().n(200).d(8).random_mask(1.0).check();  // everything visible: full tiles
}

TEST_CASE("score bias: shared, per head and per batch and head, -inf entries, with masks and encodings") {
  AttentionTester().n(300).d(64).score_bias(2).check();
  AttentionTester().batch(2).heads(4, 2).tokens(100, 700).d(32).score_bias(3, 0.1).causal().check();
  AttentionTester().batch(3).heads(4).n(257).d(16).score_bias(4, 0.5).random_mask(0.5).check();
  AttentionTester().heads(2).n(400).d(32).score_bias(3).window(50, 50).alibi().rope("half").check();
  AttentionTester().batch(2).n(300).d(8).score_bias(4, 1.0).key_lengths({300, 10}).check();  // all -inf: zeros
  AttentionTester().heads(2).n(500).d(32).score_bias(2, 0.9).random_blocks(64, 64, 0.5).check();
  AttentionTester().tokens(200, 600).d(16).score_bias(3, 0.2).additive(8).check();
  for (const char* normalizer : {"sigmoid", "relu"}) {
    CAPTURE(normalizer);
    AttentionTester().heads(4, 2).n(300).d(32).causal().score_bias(4, 0.1).normalizer(normalizer).check();
  }
  // Decoding (split keys) with the bias shared by the heads of a group, and per head.
  AttentionTester().heads(8, 2).tokens(1, 3000).d(64).score_bias(2, 0.1).chunk_bytes(64 << 10).check();
  AttentionTester().heads(8, 2).tokens(4, 2000).d(64).score_bias(3).chunk_bytes(32 << 10).check();
  AttentionTester().heads(4).tokens(100, 3000).d(32).score_bias(4).packed_budget(64 << 10).layout(Layout::bnhd).check();
}

TEST_CASE("block-sparse layouts, aligned and not with the engine's tiles") {
  AttentionTester().n(1024).d(64).random_blocks(64, 64, 0.25).check();
  AttentionTester().n(1000).d(64).random_blocks(100, 300, 0.5).causal().check();
  AttentionTester().batch(2).heads(4, 1).n(777).d(24).random_blocks(32, 16, 0.1).key_lengths({700, 77}).check();
  AttentionTester().n(600).d(32).random_blocks(128, 128, 0.6).random_mask(0.7).check();
  AttentionTester().n(300).d(32).random_blocks(64, 64, 0.0).check();  // no visible tile
}

TEST_CASE("keys packed in chunks when a head exceeds the budget: state carried across chunks") {
  // A 64 KiB budget holds 128 keys of D + Dv = 128 floats: several chunks per head.
  AttentionTester().n(1000).d(64).packed_budget(64 << 10).check();
  AttentionTester().batch(2).heads(4, 2).n(1300).d(64).causal().packed_budget(64 << 10).check();
  AttentionTester().n(2000).d(32).window(100, 100).packed_budget(32 << 10).check();
  AttentionTester().batch(2).n(900).dims(48, 80).random_blocks(128, 128, 0.3).key_lengths({900, 300})
      .packed_budget(40 << 10).layout(Layout::bnhd).check();
  // A few more queries than one block (fewer run as split keys, below).
  AttentionTester().tokens(100, 3000).d(64).random_mask(0.1).packed_budget(64 << 10).check();
  // Chunks of several heads packed at once, each head's query blocks carrying their own state.
  AttentionTester().batch(2).heads(6, 3).n(1100).d(64).chunk_bytes(128 << 10).check();
  AttentionTester().heads(4, 2).n(900).dims(48, 24).causal().chunk_bytes(64 << 10).layout(Layout::bnhd).check();
  AttentionTester().batch(2).heads(2).n(800).d(16).window(60, 60).key_lengths({800, 333}).alibi().rope("half")
      .chunk_bytes(16 << 10).check();
  AttentionTester().heads(4, 2).tokens(50, 5000).d(64).causal().chunk_bytes(256 << 10).check();  // 100 rows per kv head
  // 12 short heads, each cut into chunks by the budget: the same bits on 1 thread (where
  // 12 heads would make enough bands) as on 2.
  AttentionTester().batch(3).heads(4).tokens(26, 1604).dims(2, 65).packed_budget(150353).check();
}

TEST_CASE("few queries against many keys: keys split across tasks, partials merged (decoding)") {
  // At most one query block over a kv head's group: its keys run in splits of their own and
  // the partial outputs merge by row max and sum. Default splits (2048 keys at D = Dv = 64),
  // then small ones (chunk_bytes: 256 keys), so that every feature meets several merges. The
  // group's heads run stacked as one block (unless a position bias or additive scores differ
  // per head); blocks of up to 16 rows (24 at D = 96-128) read keys and values in place
  // (qk_rows, pv_rows) unless RoPE transforms the keys; larger blocks, RoPE and additive scores
  // pack them.
  AttentionTester().tokens(1, 5000).d(64).causal().check();
  AttentionTester().heads(8, 2).tokens(3, 3000).d(64).causal().chunk_bytes(64 << 10).check();
  AttentionTester().heads(32, 1).tokens(3, 2100).d(128).chunk_bytes(64 << 10).check();  // 96 rows per group
  AttentionTester().batch(3).heads(4, 1).tokens(2, 2000).d(80).key_lengths({0, 700, 2000}).chunk_bytes(64 << 10).check();
  AttentionTester().heads(4, 2).tokens(1, 4099).d(128).alibi().rope("half").chunk_bytes(64 << 10).check();
  AttentionTester().heads(2).tokens(7, 3000).d(32).relative_bias(16).window(2000, 0).chunk_bytes(32 << 10).check();
  AttentionTester().tokens(5, 2000).d(64).random_mask(0.3).chunk_bytes(64 << 10).check();
  AttentionTester().tokens(4, 2500).d(64).random_blocks(2, 128, 0.4).chunk_bytes(64 << 10).check();
  AttentionTester().tokens(2, 3000).d(64).value_range(6.0f).chunk_bytes(64 << 10).check();  // large logits
  AttentionTester().tokens(3, 3000).d(64).score_drift(0.01f).chunk_bytes(64 << 10).check();  // later splits' max larger
  AttentionTester().tokens(3, 3000).d(64).score_drift(-0.01f).chunk_bytes(64 << 10).check();
  // Values packed (rows not whole vectors, or strided) and read in place at any alignment.
  AttentionTester().heads(4, 2).tokens(3, 2000).dims(64, 40).causal().chunk_bytes(64 << 10).check();
  AttentionTester().batch(2).heads(4, 2).tokens(2, 2000).d(64).layout(Layout::bnhd).chunk_bytes(64 << 10).check();
  AttentionTester().heads(2, 1).tokens(2, 1500).dims(24, 16).layout(Layout::bhdn).chunk_bytes(32 << 10).check();
  for (std::int64_t d : {1, 3, 37}) {  // rows in place with a tail past the last whole vector
    CAPTURE(d);
    AttentionTester().heads(3).tokens(4, 1300).dims(d, d + 2).chunk_bytes(16 << 10).check();
  }
  for (const char* normalizer : {"sigmoid", "relu"}) {
    CAPTURE(normalizer);
    AttentionTester().heads(4, 2).tokens(3, 2000).d(32).causal().normalizer(normalizer).chunk_bytes(32 << 10).check();
  }
  AttentionTester().tokens(2, 1200).d(16).additive(8).chunk_bytes(16 << 10).check();
  // Stacked blocks whose rows repeat the group's few positions: masks and per-row key bounds
  // taken per head's run of rows, in place (12 rows) and packed (24 to 40 rows).
  AttentionTester().heads(8, 2).tokens(3, 3000).d(64).window(700, 0).chunk_bytes(64 << 10).check();
  AttentionTester().heads(16, 2).tokens(3, 3000).d(64).causal().chunk_bytes(64 << 10).check();
  AttentionTester().heads(8, 1).tokens(5, 3000).d(32).window(500, 0).chunk_bytes(32 << 10).check();
  AttentionTester().heads(8, 1).tokens(4, 2000).d(32).random_mask(0.3).chunk_bytes(32 << 10).check();
  AttentionTester().batch(2).heads(8, 1).tokens(3, 2000).d(64).key_lengths({2000, 900}).chunk_bytes(64 << 10).check();
  // 24 rows in place at D = 128 and 96 (packed at other depths).
  AttentionTester().heads(8, 1).tokens(3, 3000).d(128).causal().chunk_bytes(64 << 10).check();
  AttentionTester().heads(12, 2).tokens(4, 2500).dims(96, 64).window(900, 0).chunk_bytes(64 << 10).check();
}

TEST_CASE("release_scratch frees the packed-key buffers kept between calls, and calls go on as before") {
  const std::int64_t n = 700, d = 32, heads = 2;
  std::vector<float> q(heads * n * d), k(q.size()), v(q.size()), first(q.size()), again(q.size());
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (std::vector<float>* t : {&q, &k, &v})
    for (float& x : *t) x = uniform(rng);
  auto run = [&](std::vector<float>& out) {
    return longattn::attention(longattn::bhnd<const float>(q.data(), 1, heads, n, d),
                               longattn::bhnd<const float>(k.data(), 1, heads, n, d),
                               longattn::bhnd<const float>(v.data(), 1, heads, n, d),
                               longattn::bhnd(out.data(), 1, heads, n, d));
  };
  run(first);
  const std::int64_t freed = longattn::release_scratch();
  CHECK(freed > 0);                      // this call's packed keys and values, at least
  CHECK(freed <= 2 * (std::int64_t{32} << 20));  // two buffers at most, each within the budget
  CHECK(longattn::release_scratch() == 0);  // nothing is kept any more
  run(again);                               // allocates afresh: the same result, bit for bit
  CHECK(first == again);
}

TEST_CASE("the scratch bytes a call reports: its tiles and packed keys, never the n×n scores") {
  const std::int64_t d = 16;  // small heads keep n = 8192 quick under the sanitizers
  struct Scratch {
    std::int64_t bytes;        // what the call reported
    std::int64_t tile_bytes;   // one thread's score tile (Br × Bc floats): the least it needs
    std::int64_t packed_budget;
  };
  auto scratch_at = [&](std::int64_t n, longattn::AttentionOptions options) {
    std::vector<float> x(n * d, 0.5f), out(x.size());
    const auto in = longattn::bhnd<const float>(x.data(), 1, 1, n, d);
    const auto out_view = longattn::bhnd(out.data(), 1, 1, n, d);
    const longattn::engine::FlashPlan plan = longattn::engine::make_flash_plan(
        longattn::engine::validate_attention(in, in, in, out_view, {}, options), options);
    const longattn::AttentionStats stats = longattn::attention(in, in, in, out_view, options);
    return Scratch{stats.scratch_bytes, plan.block_rows * plan.block_keys * std::int64_t{sizeof(float)},
                   plan.packed_budget_bytes};
  };
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    longattn::AttentionOptions full;
    full.threads = threads;
    for (std::int64_t n : {1024, 8192}) {
      CAPTURE(n);
      const Scratch scratch = scratch_at(n, full);
      CHECK(scratch.bytes >= scratch.tile_bytes);
      // The packed-key budget and a few MiB of tiles per thread, at any n.
      CHECK(scratch.bytes <= scratch.packed_budget + threads * (std::int64_t{4} << 20));
      if (n == 8192) CHECK(scratch.bytes < n * n * 4 / 64);  // the n×n scores would take 256 MiB
    }
    // A narrow window at n = 65536: O(n) bookkeeping and O(w·D) packed keys, less than one
    // of its 4 MiB inputs.
    longattn::AttentionOptions window = full;
    window.window = longattn::Window{64, 64};
    const Scratch windowed = scratch_at(65536, window);
    CHECK(windowed.bytes >= windowed.tile_bytes);
    CHECK(windowed.bytes < 65536 * d * 4);
  }
}

TEST_CASE("one key far above every earlier one in its rows: 2^(score - stale max) overflows, then the tile's max") {
  // Key 300 scores `jump` against the others' ~0, in a tile run after the row max was set
  // by earlier ones: its exponential against that stale max overflows (128 in log2 units is
  // a jump of 89), and the tile must be taken again with its own max. Before exp2_finite
  // clamped its input, AVX2 and scalar attention built 2^n from wrapped-around exponent bits
  // and returned garbage for jumps of 95 and 200. With a window, key 300 lies in the edge
  // slices of some rows, which then run with per-row key bounds.
  const std::int64_t n = 600, d = 4, spike = 300;
  std::vector<float> q(n * d, 0.0f), k(n * d, 0.0f), v(n * d, 0.0f), out(n * d);
  for (std::int64_t i = 0; i < n; ++i) {
    q[i * d] = 1.0f;
    k[i * d] = 0.01f * static_cast<float>(i % 7);
    v[i * d + 1] = 1.0f;  // every other key's value: (0, 1, 0, 0)
  }
  v[spike * d + 1] = 0.0f;
  v[spike * d + 2] = 1.0f;  // the spike's: (0, 0, 1, 0)
  for (const float jump : {50.0f, 95.0f, 200.0f}) {
    k[spike * d] = jump;
    for (const longattn::Window window : {longattn::Window::full(), longattn::Window{200, 200}}) {
      for (const longattn::Isa isa : longattn::testing::runnable_isas()) {
        for (const int threads : {1, 2}) {
          CAPTURE(jump);
          CAPTURE(window.left);
          CAPTURE(longattn::to_string(isa));
          CAPTURE(threads);
          longattn::AttentionOptions options;
          options.scale = 1.0f;
          options.window = window;
          options.isa = isa;
          options.threads = threads;
          longattn::attention(longattn::bhnd<const float>(q.data(), 1, 1, n, d),
                              longattn::bhnd<const float>(k.data(), 1, 1, n, d),
                              longattn::bhnd<const float>(v.data(), 1, 1, n, d),
                              longattn::bhnd(out.data(), 1, 1, n, d), options);
          double worst = 0;  // rows that see the spike take its value alone (to within e^-49 and rounding)
          for (std::int64_t i = 0; i < n; ++i) {
            const bool sees_spike = window.is_full() || std::abs(i - spike) <= 200;
            worst = std::max({worst, std::abs(out[i * d + 1] - (sees_spike ? 0.0 : 1.0)),
                              std::abs(out[i * d + 2] - (sees_spike ? 1.0 : 0.0))});
          }
          CHECK(worst < 1e-5);  // fp32 sums over up to 600 keys
        }
      }
    }
  }
}

TEST_CASE("scores whose row max keeps growing from tile to tile: every tile rescales") {
  AttentionTester().n(1100).d(64).score_drift(0.02f).check();
  AttentionTester().batch(2).heads(4, 2).n(900).d(32).score_drift(0.02f).causal().chunk_bytes(64 << 10).check();
  // Growth within one tile far beyond 2^128: only exponentials against the tile's own max
  // stay finite.
  AttentionTester().n(1000).d(64).score_drift(4.0f).check();
  AttentionTester().heads(2).n(1300).d(80).score_drift(0.5f).chunk_bytes(128 << 10).layout(Layout::bnhd).check();
  // Falling scores: the first tile holds the max, later ones only add.
  AttentionTester().n(1000).d(64).score_drift(-0.05f).check();
  // Rises of ~9 (log2) per tile: after its first tile a row runs against a stale max
  // (probabilities up to 2^9), and every second tile passes kLazySumLimit and is taken again.
  AttentionTester().n(2100).d(64).score_drift(0.2f).check();
  AttentionTester().heads(2, 1).n(1500).d(128).score_drift(0.2f).check();
  // Rises of ~30 (log2) per tile with values near 1e30: probabilities against a stale max
  // (up to 2^30 and more) stay finite, but times the values they would overflow the output;
  // kLazySumLimit, not an overflow, sends these tiles back to be taken with their max.
  AttentionTester().n(1100).d(64).score_drift(0.35f).value_scale(1e30f).check();
  // With a position bias the nearest tiles run first; the drift then raises the max tile
  // after tile right of the queries, so biased tiles, too, are taken again with their max.
  AttentionTester().heads(2).n(2100).d(64).score_drift(0.2f).alibi().check();
  AttentionTester().heads(2).n(1500).d(32).score_drift(0.35f).relative_bias(64).chunk_bytes(128 << 10).check();
}

TEST_CASE("sigmoid and ReLU attention: same tiling and masks, no running max") {
  AttentionTester().n(300).d(64).normalizer("sigmoid").check();
  AttentionTester().n(1000).dims(80, 24).normalizer("sigmoid").sigmoid_bias(-2.5).causal().check();
  AttentionTester().batch(2).heads(4, 2).n(400).d(32).normalizer("sigmoid").window(40, 7).key_lengths({400, 99}).check();
  AttentionTester().n(300).d(64).normalizer("relu").check();
  AttentionTester().tokens(70, 900).d(16).normalizer("relu").causal().random_mask(0.5).check();
  AttentionTester().n(500).d(8).normalizer("relu").random_blocks(64, 64, 0.3).layout(Layout::bnhd).check();
  AttentionTester().tokens(300, 100).d(16).normalizer("sigmoid").causal().check();  // rows that see nothing: zeros
}

TEST_CASE("linear attention: full and causal (recurrent, chunk-parallel), padding, GQA") {
  AttentionTester().n(300).d(64).normalizer("linear").check();
  AttentionTester().n(1000).dims(32, 48).normalizer("linear").causal().check();
  AttentionTester().n(70000 / 64).d(16).normalizer("linear").causal().check();  // many chunks
  AttentionTester().batch(2).heads(4, 2).n(257).d(16).normalizer("linear").causal().key_lengths({257, 100}).check();
  AttentionTester().tokens(5, 600).d(64).normalizer("linear").causal().check();  // decode, bottom-right
  AttentionTester().tokens(300, 100).d(8).normalizer("linear").causal().check(); // early queries see nothing
  AttentionTester().batch(2).n(1).d(1).normalizer("linear").key_lengths({0, 1}).check();
  // Key blocks loaded across causal blocks, grouped heads sharing one state, value rows copied
  // (Dv not a multiple of lanes, rows strided) or read in place, and an infinite value the
  // rows before it in its block must not see.
  AttentionTester().batch(2).heads(6, 2).tokens(700, 709).dims(24, 20).normalizer("linear").causal()
      .key_lengths({709, 333}).layout(Layout::bnhd).check();
  AttentionTester().heads(4, 1).n(600).d(32).normalizer("linear").causal().check();
  AttentionTester().heads(2).n(300).d(16).normalizer("linear").causal()
      .poison('v', 0, 1, 200, 3, std::numeric_limits<float>::infinity()).check();
}

TEST_CASE("additive (Bahdanau) scores, with every normalizer that has scores") {
  AttentionTester().n(130).d(16).additive(24).check();
  AttentionTester().n(300).dims(8, 20).additive(5).causal().key_lengths({250}).check();
  AttentionTester().batch(2).heads(4, 2).n(97).d(3).additive(1).window(10, 3).layout(Layout::bnhd).check();
  AttentionTester().n(200).d(16).additive(16).normalizer("sigmoid").random_mask(0.5).check();
  AttentionTester().n(200).d(16).additive(16).normalizer("relu").check();
}

#if defined(__x86_64__)
#include <xmmintrin.h>
TEST_CASE("denormals are flushed inside the kernel only: the caller's MXCSR is left as it was") {
  // Only the control bits: the exception flags (bits 0-5) are sticky and the tester's own
  // arithmetic sets "inexact", so comparing them failed when this case ran alone.
  constexpr unsigned kControlBits = ~0x3Fu;
  const unsigned before = _mm_getcsr() & kControlBits;
  AttentionTester().heads(4).n(300).d(16).alibi().check();
  CHECK((_mm_getcsr() & kControlBits) == before);
  CHECK((before & 0x8040u) == 0u);  // the default mode: no flushing leaked to this thread
}
#endif
