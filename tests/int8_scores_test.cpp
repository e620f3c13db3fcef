// int8 scores (QkPrecision::int8): attention() against the fp64 reference within the int8
// tolerance (bf16's rel, golden::kInt8ScoreRel on the scores) over the shapes, masks and
// encodings of the fp32 tests, P·V in bf16 and in fp32, threads 1 and 2 bit for bit; the
// golden cases; non-finite inputs; the accuracy the README quotes; the calls it refuses.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <utility>
#include <random>
#include <string>
#include <vector>

#include "check/reference_attention.hpp"
#include "longattn/attention.hpp"
#include "longattn/error.hpp"
#include "simd/kernel_table.hpp"
#include "tests/attention_tester.hpp"
#include "tools/golden_cases.hpp"

using longattn::testing::AttentionTester;
using longattn::testing::Layout;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The int8 cases run on the avx512 path alone: skipped where the CPU, or the paths the tests
// may run (LONGATTN_TEST_ISAS), have no VNNI.
bool cpu_has_int8_scores() {
  const auto isas = longattn::testing::runnable_isas();
  return longattn::simd::cpu_has_avx512_vnni() && std::find(isas.begin(), isas.end(), longattn::Isa::avx512) != isas.end();
}

}  // namespace

TEST_CASE("int8 scores meet their tolerance on full, causal and windowed attention, odd sizes") {
  if (!cpu_has_int8_scores()) return;
  AttentionTester().qk_int8().n(300).d(64).check();
  AttentionTester().qk_int8().n(517).d(64).causal().heads(3).check();
  AttentionTester().qk_int8().n(700).d(32).window(100, 20).check();
  AttentionTester().qk_int8().tokens(200, 900).dims(72, 40).causal().check();
  AttentionTester().qk_int8().n(260).dims(5, 9).check();  // D not a multiple of 4
  AttentionTester().qk_int8().n(130).d(1).check();
  AttentionTester().qk_int8().n(200).d(128).scale(0.3).value_range(3.0f).check();
  AttentionTester().qk_int8().n(150).dims(300, 20).check();  // key panels staged past the stack's 256 features
}

TEST_CASE("int8 scores with grouped heads, layouts, masks, encodings, sinks, bf16 inputs and key chunks") {
  if (!cpu_has_int8_scores()) return;
  AttentionTester().qk_int8().heads(8, 2).n(300).d(64).causal().check();
  for (Layout layout : {Layout::bnhd, Layout::bhdn, Layout::padded}) {
    AttentionTester().qk_int8().batch(2).heads(2).n(200).d(48).layout(layout).check();
  }
  AttentionTester().qk_int8().n(300).d(64).random_mask(0.3).check();
  AttentionTester().qk_int8().n(256).d(64).random_blocks(32, 64, 0.5).check();
  AttentionTester().qk_int8().batch(3).tokens(150, 400).d(64).key_lengths({400, 17, 0}).check();
  AttentionTester().qk_int8().n(400).d(64).rope("half").causal().check();
  AttentionTester().qk_int8().n(300).d(32).rope("interleaved").positions(1000, 990).check();
  AttentionTester().qk_int8().n(300).d(64).alibi().heads(4).causal().check();
  AttentionTester().qk_int8().n(300).d(64).relative_bias(16).check();
  AttentionTester().qk_int8().n(250).d(64).score_bias(3, 0.2).check();
  AttentionTester().qk_int8().heads(3).n(300).d(64).sinks().causal().check();
  AttentionTester().qk_int8().n(600).d(64).window(64, 0).sink_keys(4).check();
  AttentionTester().qk_int8().heads(2).sequences({{100, 100}, {130, 130}, {1, 1}}).d(64).causal().check();
  AttentionTester().qk_int8().bf16_inputs().n(300).d(64).causal().check();
  AttentionTester().qk_int8().n(700).d(64).causal().packed_budget(64 << 10).check();
  AttentionTester().qk_int8().n(300).d(64).score_drift(0.05f).check();
}

TEST_CASE("int8 scores: a few queries per kv head read keys in place, as the inputs are") {
  if (!cpu_has_int8_scores()) return;
  using namespace longattn;
  std::vector<float> q(4 * 64, 0.25f), k(4 * 1000 * 64, 0.5f), out(q.size());
  AttentionOptions options;
  options.qk_precision = QkPrecision::int8;
  options.isa = Isa::avx512;  // the int8 path, whatever LONGATTN_ISA says
  const AttentionStats stats = attention(bhnd<const float>(q.data(), 1, 4, 1, 64), bhnd<const float>(k.data(), 1, 4, 1000, 64),
                                         bhnd<const float>(k.data(), 1, 4, 1000, 64), bhnd(out.data(), 1, 4, 1, 64), options);
  CHECK_FALSE(stats.qk_int8);
  AttentionTester().qk_int8().tokens(3, 2000).heads(8, 2).d(64).check();
}

TEST_CASE("int8 scores: NaN reaches the rows that see it and no other") {
  if (!cpu_has_int8_scores()) return;
  AttentionTester().qk_int8().n(300).d(64).causal().poison('q', 0, 0, 150, 5, kNaN).check();
  AttentionTester().qk_int8().n(300).d(64).causal().poison('k', 0, 0, 150, 7, kNaN).check();
  AttentionTester().qk_int8().n(300).d(64).causal().poison('v', 0, 0, 150, 7, kNaN).check();
  AttentionTester().qk_int8().n(700).d(64).window(40, 0).poison('k', 0, 0, 500, 1, kNaN).check();
  AttentionTester()
      .qk_int8()
      .batch(2)
      .tokens(100, 1000)
      .d(64)
      .key_lengths({700, 1000})
      .poison('k', 0, 0, 701, 0, kNaN)
      .poison('v', 0, 0, 800, 0, kNaN)
      .check();
}

TEST_CASE("int8 decoding kernel: exact int32 sums of int8 query rows against int8 key rows") {
  if (!cpu_has_int8_scores()) return;
  namespace simd = longattn::simd;
  const simd::Int8DotKernels& kernels = *simd::kernels_for(longattn::Isa::avx512).int8_dot;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> value(-127, 127);
  const float key_scales[] = {0.5f, 1.0f, 2.0f, 0.25f};
  for (std::int64_t d : {1, 3, 4, 63, 64, 65, 128, 130, 256}) {
    for (std::int64_t rows = 1; rows <= 6; ++rows) {
      for (std::int64_t count : {1, 3, 4, 5, 37}) {
        CAPTURE(d);
        CAPTURE(rows);
        CAPTURE(count);
        // Query rows as the kernels lay them out: int8 values, zeros to 4 · quads, then the
        // start (-128 · Σ q), the factor and the score offset.
        const std::int64_t quads = (d + 3) / 4, units = quads + simd::kInt8QueryTail, ldk = d + 3;
        std::vector<float> q_rows(static_cast<std::size_t>(rows * units), 0.0f);
        std::vector<std::int8_t> keys(static_cast<std::size_t>(count * ldk));
        for (auto& x : keys) x = static_cast<std::int8_t>(value(rng));
        std::vector<float> scales(static_cast<std::size_t>(count)), s(static_cast<std::size_t>(rows * 40), NAN);
        for (std::int64_t c = 0; c < count; ++c) scales[c] = key_scales[c % 4];
        for (std::int64_t r = 0; r < rows; ++r) {
          auto* bytes = reinterpret_cast<std::int8_t*>(q_rows.data() + r * units);
          std::int32_t sum = 0;
          for (std::int64_t f = 0; f < d; ++f) sum += bytes[f] = static_cast<std::int8_t>(value(rng));
          const std::int32_t start = -128 * sum;
          std::memcpy(bytes + 4 * quads, &start, sizeof(start));
          q_rows[r * units + quads + 1] = 1.0f;
        }
        kernels.qk_rows(reinterpret_cast<const std::int8_t*>(q_rows.data()), rows, d, keys.data(), ldk, scales.data(),
                        count, s.data(), 40);
        bool exact = true;
        for (std::int64_t r = 0; r < rows; ++r) {
          const auto* q = reinterpret_cast<const std::int8_t*>(q_rows.data() + r * units);
          for (std::int64_t c = 0; c < count; ++c) {
            std::int64_t dot = 0;
            for (std::int64_t f = 0; f < d; ++f) dot += std::int64_t{q[f]} * keys[c * ldk + f];
            exact &= s[r * 40 + c] == static_cast<float>(dot) * scales[c];
          }
        }
        CHECK(exact);
      }
    }
  }
}

TEST_CASE("golden attention cases with int8 scores, within the int8 tolerance") {
  if (!cpu_has_int8_scores()) return;
  namespace golden = longattn::golden;
  const std::filesystem::path root = golden::golden_root(LONGATTN_DEFAULT_GOLDEN_DIR);
  REQUIRE(std::filesystem::is_directory(root));
  int ran = 0;
  for (const std::filesystem::path& dir : golden::case_folders(root)) {
    for (int threads : {1, 2}) {
      const golden::CaseResult r = golden::run_case(dir, longattn::Isa::avx512, threads, golden::Inputs::int8_scores);
      if (r.status == golden::CaseResult::Status::skipped) continue;
      INFO(dir.filename().string() << ", " << threads << " threads: " << r.detail);
      CHECK(r.status == golden::CaseResult::Status::passed);
      ran += threads == 1;
    }
  }
  MESSAGE("golden with int8 scores: ran " << ran << " attention cases");
  CHECK(ran >= 20);
}

namespace {

// Softmax attention in fp64, [H][n][D] q, k, v with one kv head per query head.
std::vector<double> attention_fp64(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                                   std::int64_t heads, std::int64_t n, std::int64_t d) {
  std::vector<double> out(static_cast<std::size_t>(heads * n * d)), s(static_cast<std::size_t>(n));
  const double scale = 1.0 / std::sqrt(double(d));
  for (std::int64_t h = 0; h < heads; ++h) {
    for (std::int64_t i = 0; i < n; ++i) {
      double most = -INFINITY, sum = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (std::int64_t c = 0; c < d; ++c) dot += double(q[(h * n + i) * d + c]) * k[(h * n + j) * d + c];
        s[j] = scale * dot, most = std::max(most, s[j]);
      }
      for (std::int64_t j = 0; j < n; ++j) sum += s[j] = std::exp(s[j] - most);
      for (std::int64_t j = 0; j < n; ++j) {
        for (std::int64_t c = 0; c < d; ++c) out[(h * n + i) * d + c] += s[j] / sum * v[(h * n + j) * d + c];
      }
    }
  }
  return out;
}

struct Accuracy {
  double max_rel = 0, mean_rel = 0, cosine = 0;  // max |err| / max |ref|, mean |err| / mean |ref|
};

Accuracy accuracy_of(const std::vector<float>& out, const std::vector<double>& ref) {
  double most = 0, err_max = 0, err_sum = 0, ref_sum = 0, dot = 0, out2 = 0, ref2 = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double e = std::abs(out[i] - ref[i]);
    most = std::max(most, std::abs(ref[i])), err_max = std::max(err_max, e);
    err_sum += e, ref_sum += std::abs(ref[i]);
    dot += out[i] * ref[i], out2 += double(out[i]) * out[i], ref2 += ref[i] * ref[i];
  }
  return {err_max / most, err_sum / ref_sum, dot / std::sqrt(out2 * ref2)};
}

}  // namespace

// The figures of README "int8 scores": against fp64, on N(0, 1) inputs, and on keys whose
// channels 3 and 40 carry a shared offset of 8 and 4× the spread (LLM keys' outlier channels).
TEST_CASE("int8 scores: accuracy on random keys and on outlier channels, beside bf16 products") {
  if (!cpu_has_int8_scores() || !longattn::simd::cpu_has_avx512_bf16()) return;
  using namespace longattn;
  const std::int64_t H = 2, n = 1024, d = 64;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  auto draw = [&] {
    std::vector<float> x(static_cast<std::size_t>(H * n * d));
    for (float& e : x) e = normal(rng);
    return x;
  };
  const std::vector<float> q = draw(), v = draw();
  for (bool outliers : {false, true}) {
    std::vector<float> k = draw();
    if (outliers) {
      for (std::int64_t row = 0; row < H * n; ++row) {
        for (std::int64_t c : {3, 40}) k[row * d + c] = 8.0f + 4.0f * k[row * d + c];
      }
    }
    const std::vector<double> ref = attention_fp64(q, k, v, H, n, d);
    auto run = [&](QkPrecision precision, Bf16Products products, bool bf16_in) {
      std::vector<float> out(ref.size());
      AttentionOptions o;
      o.qk_precision = precision, o.bf16_products = products;
      o.isa = Isa::avx512;  // the int8 path, whatever LONGATTN_ISA says
      if (bf16_in) {
        auto rounded = [](const std::vector<float>& x) { return std::vector<bf16>(x.begin(), x.end()); };
        const std::vector<bf16> qb = rounded(q), kb = rounded(k), vb = rounded(v);
        attention(bhnd<const bf16>(qb.data(), 1, H, n, d), bhnd<const bf16>(kb.data(), 1, H, n, d),
                  bhnd<const bf16>(vb.data(), 1, H, n, d), bhnd(out.data(), 1, H, n, d), o);
      } else {
        attention(bhnd<const float>(q.data(), 1, H, n, d), bhnd<const float>(k.data(), 1, H, n, d),
                  bhnd<const float>(v.data(), 1, H, n, d), bhnd(out.data(), 1, H, n, d), o);
      }
      return accuracy_of(out, ref);
    };
    const Accuracy int8_bf16 = run(QkPrecision::int8, Bf16Products::native, false);
    const Accuracy int8_fp32 = run(QkPrecision::int8, Bf16Products::widened, false);
    const Accuracy bf16 = run(QkPrecision::inputs, Bf16Products::native, true);
    const std::pair<std::string, Accuracy> rows[] = {
        {"int8 q·k, bf16 P·V", int8_bf16}, {"int8 q·k, fp32 P·V", int8_fp32}, {"bf16 products", bf16}};
    for (const auto& [name, a] : rows) {
      MESSAGE((outliers ? "outlier keys " : "random keys  ") << name << ": max rel " << a.max_rel << ", mean rel "
                                                              << a.mean_rel << ", cosine " << a.cosine);
    }
    CHECK(int8_bf16.cosine >= 0.9995);
    CHECK(int8_fp32.cosine >= 0.9995);
    CHECK(int8_bf16.max_rel <= 2e-2);
  }
}

TEST_CASE("int8 scores: refused with soft-capping, other normalizers, additive scores and paths without VNNI") {
  using namespace longattn;
  std::vector<float> q(1 * 2 * 200 * 8, 0.5f), out(q.size(), 7.0f);
  const auto view = bhnd<const float>(q.data(), 1, 2, 200, 8);
  auto fails = [&](const AttentionOptions& options, const std::string& needle) {
    CAPTURE(needle);
    try {
      attention(view, view, view, bhnd(out.data(), 1, 2, 200, 8), options);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
    for (float x : out) CHECK(x == 7.0f);
  };
  AttentionOptions o;
  o.qk_precision = QkPrecision::int8;
  o.softcap = 30.0f;
  fails(o, "qk_precision: int8 scores are shifted by the mean key's score, which softcap would cap");
  o.softcap.reset();
  o.normalizer = Normalizer::sigmoid;
  fails(o, "qk_precision: int8 scores are shifted by the mean key's score, which only softmax ignores; got sigmoid");
  o.normalizer = Normalizer::softmax;
  o.isa = Isa::scalar;
  fails(o, "qk_precision: int8 scores need AVX512-VNNI (vpdpbusd), which the scalar path does not use");
  if (!simd::cpu_supports(Isa::avx512)) return;
  o.isa = Isa::avx512;
  if (!cpu_has_int8_scores()) fails(o, "which this CPU does not have");
  CHECK(parse_qk_precision("int8") == QkPrecision::int8);
  CHECK_THROWS_WITH_AS(parse_qk_precision("fp8"), "qk_precision: expected inputs or int8, got \"fp8\"", Error);
}
