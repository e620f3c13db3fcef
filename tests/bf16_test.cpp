// bf16 inputs: the conversions, the kernels' widening, and attention() on bf16 q, k, v (and
// on fp32 q with bf16 k, v) over the shapes, masks, encodings and paths of the fp32 tests
// (every ISA, threads 1 and 2); a bf16 out, the fp32 one rounded.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "longattn/attention.hpp"
#include "longattn/bf16.hpp"
#include "simd/kernel_table.hpp"
#include "tests/attention_tester.hpp"
#include "tools/golden_cases.hpp"

using longattn::bf16;
using longattn::testing::AttentionTester;
using longattn::testing::Layout;

namespace {

std::uint16_t bits_of(float x) { return bf16(x).bits; }
float from_bits(std::uint32_t bits) { return std::bit_cast<float>(bits); }

}  // namespace

TEST_CASE("bf16 rounds to nearest, ties to even, and widens exactly") {
  CHECK(bits_of(1.0f) == 0x3f80);
  CHECK(bits_of(-2.5f) == 0xc020);
  CHECK(bits_of(from_bits(0x3f808000)) == 0x3f80);  // halfway, even below: down
  CHECK(bits_of(from_bits(0x3f818000)) == 0x3f82);  // halfway, odd below: up
  CHECK(bits_of(from_bits(0x3f808001)) == 0x3f81);  // past halfway: up
  CHECK(bits_of(from_bits(0x3f807fff)) == 0x3f80);
  CHECK(bits_of(from_bits(0x007f8000)) == 0x0080);  // a denormal rounds up into the normals
  CHECK(bits_of(0.0f) == 0x0000);
  CHECK(bits_of(-0.0f) == 0x8000);
  CHECK(bits_of(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(bits_of(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(bits_of(std::numeric_limits<float>::max()) == 0x7f80);  // past the largest bf16
  CHECK(bits_of(from_bits(0x7f7f7fff)) == 0x7f7f);             // the largest bf16 itself
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(static_cast<float>(bf16(nan))));
  CHECK(std::isnan(static_cast<float>(bf16(from_bits(0x7f800001)))));  // a payload in the low bits stays NaN
  CHECK(std::isnan(static_cast<float>(bf16(from_bits(0xff800001)))));
  for (std::uint32_t b = 0; b < 0x10000; ++b) {  // widening is exact: every value rounds to itself
    const bf16 x = bf16::from_bits(static_cast<std::uint16_t>(b));
    const float wide = static_cast<float>(x);
    CHECK(std::bit_cast<std::uint32_t>(wide) == b << 16);
    if (!std::isnan(wide)) CHECK(bf16(wide) == x);
  }
}

TEST_CASE("every ISA widens bf16 arrays as the scalar conversion does, at any length and offset") {
  std::vector<bf16> all(0x10000 + 40);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = bf16::from_bits(static_cast<std::uint16_t>(i * 40503u));
  for (longattn::Isa isa : longattn::testing::runnable_isas()) {
    CAPTURE(to_string(isa));
    const auto& kernels = longattn::simd::kernels_for(isa);
    for (std::int64_t offset : {0, 1, 7}) {
      for (std::int64_t n : {0, 1, 15, 16, 17, 33, 0x10000}) {
        std::vector<float> wide(static_cast<std::size_t>(n) + 1, -1.0f);
        kernels.elementwise.widen_bf16(all.data() + offset, n, wide.data());
        bool same = true;
        for (std::int64_t i = 0; i < n; ++i) {
          same &= std::bit_cast<std::uint32_t>(wide[i]) == std::uint32_t{all[offset + i].bits} << 16;
        }
        CHECK(same);
        CHECK(wide[n] == -1.0f);  // nothing past n written
      }
    }
  }
}

TEST_CASE("attention on bf16 q, k, v: odd sizes and the fp32 tolerance on the widened inputs") {
  for (std::int64_t n : {1, 7, 65}) {
    for (std::int64_t d : {1, 3, 80, 256}) {
      CAPTURE(n);
      CAPTURE(d);
      AttentionTester().n(n).d(d).heads(2).bf16_inputs().check();
    }
  }
  AttentionTester().n(1000).d(64).bf16_inputs().check();
  AttentionTester().n(4099).d(80).causal().bf16_inputs().check();
  AttentionTester().batch(2).heads(6, 2).tokens(300, 700).dims(64, 40).scale(0.3).bf16_inputs().check();
  // Logits in the hundreds: the reference takes the same rounded inputs, so the engine's error
  // is its own (the golden large_logits case, judged against unrounded inputs, is not run here).
  AttentionTester().n(500).d(64).value_range(6.0f).bf16_inputs().check();
}

TEST_CASE("bf16 products: vdpbf16ps where the CPU has it, for what it covers, within the bf16 tolerance") {
  using namespace longattn;
  const std::int64_t n = 300, d = 64;
  std::vector<bf16> q(2 * n * d), k(2 * n * d), v(2 * n * d);
  for (std::size_t i = 0; i < q.size(); ++i) {
    q[i] = bf16(std::sin(0.37f * float(i)));
    k[i] = bf16(std::cos(0.11f * float(i)));
    v[i] = bf16(std::sin(0.05f * float(i) + 1.0f));
  }
  std::vector<float> out(2 * n * d), wq(8 * d, 0.1f), wk(8 * d, 0.1f), w(8, 1.0f);
  auto run = [&](AttentionOptions options, std::int64_t nq) {
    return attention(bhnd<const bf16>(q.data(), 1, 2, nq, d),
                     bhnd<const bf16>(k.data(), 1, 2, n, d), bhnd<const bf16>(v.data(), 1, 2, n, d),
                     bhnd(out.data(), 1, 2, nq, d), options);
  };
  for (Isa isa : testing::runnable_isas()) {
    CAPTURE(to_string(isa));
    AttentionOptions options;
    options.isa = isa;
    const bool native = simd::kernels_for(isa).bf16_dot != nullptr;
    CHECK(native == (isa == Isa::avx512 && simd::cpu_has_avx512_bf16()));
    CHECK(run(options, n).bf16_products == native);
    CHECK_FALSE(run(options, 16).bf16_products);  // a few queries: the decoding kernels, widened
    options.bf16_products = Bf16Products::widened;
    CHECK_FALSE(run(options, n).bf16_products);
    options.bf16_products = Bf16Products::native;
    options.rope = {RopePairing::half};
    CHECK(run(options, n).bf16_products == native);  // q and k rotated, then rounded to bf16
    options.rope = {};
    options.additive = {{wq.data(), {8, d}, {d, 1}}, {wk.data(), {8, d}, {d, 1}}, w};
    CHECK_FALSE(run(options, n).bf16_products);  // projected fp32 rows
  }
  // Odd depths, where a last feature pairs with a zero, and every path's tiles.
  for (std::int64_t depth : {1, 3, 80, 256}) {
    CAPTURE(depth);
    AttentionTester().n(200).d(depth).heads(2).bf16_inputs().check();
  }
  AttentionTester().tokens(97, 1000).dims(3, 5).causal().bf16_inputs().check();
  AttentionTester().tokens(200, 999).d(64).alibi().bf16_inputs().check();
  AttentionTester().tokens(200, 999).d(64).relative_bias(16).window(128, 0).bf16_inputs().check();
  AttentionTester().heads(4, 2).tokens(300, 1000).d(80).rope("half").causal().bf16_inputs().check();
  AttentionTester().tokens(150, 700).d(6).rope("interleaved").layout(Layout::bnhd).bf16_inputs().check();
}

TEST_CASE("bf16 inputs in every layout, with masks, encodings and the other normalizers") {
  for (Layout layout : {Layout::bnhd, Layout::bhdn}) {
    AttentionTester().batch(2).heads(4, 2).n(300).d(48).causal().layout(layout).bf16_inputs().check();
  }
  AttentionTester().heads(4, 2).n(900).d(64).window(100, 20).rope("half").alibi().bf16_inputs().check();
  AttentionTester().heads(2).n(500).d(32).rope("interleaved").relative_bias(8).layout(Layout::bhdn).bf16_inputs().check();
  AttentionTester().batch(2).n(400).d(64).key_lengths({400, 123}).random_mask(0.3).bf16_inputs().check();
  AttentionTester().n(600).d(32).random_blocks(64, 64, 0.5).bf16_inputs().check();
  AttentionTester().n(700).d(64).window(60, 60).bf16_inputs().check();  // bands
  AttentionTester().heads(16).n(200).d(64).bf16_inputs().check();      // short heads
  for (const char* normalizer : {"sigmoid", "relu", "linear"}) {
    CAPTURE(normalizer);
    AttentionTester().heads(4, 2).n(500).d(32).causal().normalizer(normalizer).bf16_inputs().check();
  }
  AttentionTester().n(300).d(16).additive(8).layout(Layout::bnhd).bf16_inputs().check();
  AttentionTester().heads(4, 2).n(600).d(64).causal().score_bias(3, 0.1).bf16_inputs().check();
  AttentionTester().heads(8, 2).tokens(1, 2000).d(64).score_bias(2).bf16_inputs().check();
}

TEST_CASE("bf16 inputs through key chunks and split keys (decoding)") {
  AttentionTester().heads(4, 2).n(900).d(64).causal().chunk_bytes(64 << 10).bf16_inputs().check();
  AttentionTester().tokens(100, 3000).d(64).packed_budget(64 << 10).bf16_inputs().check();
  AttentionTester().tokens(1, 5000).d(64).causal().bf16_inputs().check();
  AttentionTester().heads(32, 8).tokens(1, 3000).d(128).chunk_bytes(64 << 10).bf16_inputs().check();
  AttentionTester().heads(8, 1).tokens(4, 2000).dims(64, 40).chunk_bytes(32 << 10).layout(Layout::bnhd).bf16_inputs().check();
  AttentionTester().heads(4, 2).tokens(1, 4099).d(128).alibi().rope("half").chunk_bytes(64 << 10).bf16_inputs().check();
  AttentionTester().heads(2).tokens(3, 1500).d(3).key_lengths({1000}).chunk_bytes(16 << 10).bf16_inputs().check();
}

TEST_CASE("fp32 queries against bf16 keys and values (a bf16 cache)") {
  AttentionTester().n(300).d(80).causal().bf16_keys_values().check();
  AttentionTester().heads(4, 2).n(600).d(64).window(64, 0).rope("half").bf16_keys_values().check();
  AttentionTester().heads(8, 1).tokens(4, 2000).dims(64, 40).layout(Layout::bnhd).bf16_keys_values().check();
  AttentionTester().heads(32, 8).tokens(1, 3000).d(128).chunk_bytes(64 << 10).bf16_keys_values().check();
  AttentionTester().heads(8, 2).tokens(40, 2000).d(64).chunk_bytes(64 << 10).bf16_keys_values().check();
  AttentionTester().n(300).d(16).additive(8).bf16_keys_values().check();
  AttentionTester().heads(4, 2).n(500).d(32).causal().normalizer("linear").bf16_keys_values().check();
}

TEST_CASE("golden attention cases on bf16 inputs, within the README's bf16 tolerance") {
  namespace golden = longattn::golden;
  const std::filesystem::path root = golden::golden_root(LONGATTN_DEFAULT_GOLDEN_DIR);
  REQUIRE(std::filesystem::is_directory(root));
  int ran = 0;
  std::string skipped;
  for (const std::filesystem::path& dir : golden::case_folders(root)) {
    for (longattn::Isa isa : longattn::testing::runnable_isas()) {
      for (int threads : {1, 2}) {
        const golden::CaseResult r = golden::run_case(dir, isa, threads, golden::Inputs::bf16);
        if (r.status == golden::CaseResult::Status::skipped) {
          if (isa == longattn::testing::runnable_isas().front() && threads == 1) {
            skipped += "  " + dir.filename().string() + " (" + r.detail + ")\n";
          }
          continue;
        }
        INFO(dir.filename().string() << " on " << to_string(isa) << ", " << threads << " threads: " << r.detail);
        CHECK(r.status == golden::CaseResult::Status::passed);
        ran += isa == longattn::testing::runnable_isas().front() && threads == 1;
      }
    }
  }
  MESSAGE("golden on bf16 inputs: ran " << ran << " attention cases; skipped:\n" << skipped);
  CHECK(ran >= 20);
}

TEST_CASE("a bf16 out holds the fp32 out rounded, for every input type, in any layout; bad views write nothing") {
  using namespace longattn;
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const std::int64_t B = 2, Hq = 4, Hkv = 2, Nq = 37, Nk = 53, D = 24;
  std::vector<float> q(B * Hq * Nq * D), k(B * Hkv * Nk * D), v(B * Hkv * Nk * D);
  for (auto* t : {&q, &k, &v}) for (float& x : *t) x = u(rng);
  q[5] = std::numeric_limits<float>::quiet_NaN();  // reaches its row, as NaN
  std::vector<bf16> qh(q.size()), kh(k.size()), vh(v.size());
  for (std::size_t i = 0; i < q.size(); ++i) qh[i] = bf16(q[i]);
  for (std::size_t i = 0; i < k.size(); ++i) kh[i] = bf16(k[i]), vh[i] = bf16(v[i]);
  AttentionOptions options;
  options.window = Window::causal();
  // out [B, Nq, Hq, D] (BNHD), and the fp32 out in the usual layout to compare with.
  auto check = [&](auto qv, auto kv, auto vv) {
    std::vector<float> wide(B * Hq * Nq * D), lse_wide(B * Hq * Nq), lse(B * Hq * Nq);
    attention(qv, kv, vv, bhnd(wide.data(), B, Hq, Nq, D), options, {lse_wide.data(), {B, Hq, Nq}, {Hq * Nq, Nq, 1}});
    std::vector<bf16> narrow(B * Nq * Hq * D);
    const AttentionStats stats = attention(qv, kv, vv, bnhd(narrow.data(), B, Nq, Hq, D), options,
                                           {lse.data(), {B, Hq, Nq}, {Hq * Nq, Nq, 1}});
    CHECK(stats.scratch_bytes >= B * Hq * Nq * D * 4);  // the fp32 copy
    bool same = true;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < Hq; ++h)
        for (std::int64_t i = 0; i < Nq; ++i)
          for (std::int64_t c = 0; c < D; ++c) {
            same = same && narrow[((b * Nq + i) * Hq + h) * D + c] == bf16(wide[((b * Hq + h) * Nq + i) * D + c]);
          }
    CHECK(same);
    CHECK(std::memcmp(lse.data(), lse_wide.data(), lse.size() * sizeof(float)) == 0);
  };
  check(bhnd<const float>(q.data(), B, Hq, Nq, D), bhnd<const float>(k.data(), B, Hkv, Nk, D),
        bhnd<const float>(v.data(), B, Hkv, Nk, D));
  check(bhnd<const bf16>(qh.data(), B, Hq, Nq, D), bhnd<const bf16>(kh.data(), B, Hkv, Nk, D),
        bhnd<const bf16>(vh.data(), B, Hkv, Nk, D));
  check(bhnd<const float>(q.data(), B, Hq, Nq, D), bhnd<const bf16>(kh.data(), B, Hkv, Nk, D),
        bhnd<const bf16>(vh.data(), B, Hkv, Nk, D));

  std::vector<bf16> out(B * Hq * Nq * D, bf16(7.0f));
  CHECK_THROWS_WITH_AS(attention(bhnd<const float>(q.data(), B, Hq, Nq, D), bhnd<const float>(k.data(), B, Hkv, Nk, D),
                                 bhnd<const float>(v.data(), B, Hkv, Nk, D), bhnd(out.data(), B, Hq, Nq - 1, D)),
                       doctest::Contains("out.shape[2]"), Error);
  CHECK(std::all_of(out.begin(), out.end(), [](bf16 x) { return x == bf16(7.0f); }));
}
