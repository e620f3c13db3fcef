// Runs every case of the golden folder (computed by an independent float64 implementation)
// whose features the engine implements, on every ISA path and threads 1 and 2, and names the
// cases it skipped and why.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "longattn/longattn.hpp"
#include "tests/attention_tester.hpp"
#include "tools/npy.hpp"

namespace fs = std::filesystem;
using longattn::testing::within_tolerance;

namespace {

fs::path golden_dir() {
  const char* env = std::getenv("LONGATTN_GOLDEN_DIR");
  return env != nullptr && *env != '\0' ? fs::path(env) : fs::path(LONGATTN_DEFAULT_GOLDEN_DIR);
}

// Why the engine cannot run a case yet, or "" when it can.
std::string unsupported_feature(const nlohmann::json& c) {
  if (c.value("op", "") != "attention") return "op " + c.value("op", std::string("?"));
  if (c.value("normalizer", "softmax") != "softmax") return "normalizer " + c["normalizer"].get<std::string>();
  for (const char* key : {"alibi", "rope_pairing", "sigmoid_bias"}) {
    if (c.contains(key) && !(c[key].is_boolean() && !c[key].get<bool>())) return key;
  }
  static const std::set<std::string> known = {"q.npy",           "k.npy",           "v.npy",
                                              "expected_out.npy", "expected_lse.npy", "key_lengths.npy",
                                              "mask.npy"};
  for (const auto& f : c["files"]) {
    if (!known.count(f.get<std::string>())) return f.get<std::string>();
  }
  if (c.value("layout", "BHND") != "BHND") return "layout " + c["layout"].get<std::string>();
  return "";
}

std::vector<std::int64_t> shape4(const longattn::npy::Array& a, const std::string& name) {
  REQUIRE_MESSAGE(a.shape.size() == 4, name << " is not 4-D");
  return a.shape;
}

void run_case(const fs::path& dir, const nlohmann::json& c) {
  using namespace longattn;
  const npy::Array qa = npy::load(dir / "q.npy"), ka = npy::load(dir / "k.npy"),
                   va = npy::load(dir / "v.npy"), ea = npy::load(dir / "expected_out.npy");
  const auto qs = shape4(qa, "q"), ks = shape4(ka, "k"), vs = shape4(va, "v");
  const std::vector<float> q = qa.values<float>(), k = ka.values<float>(), v = va.values<float>();
  const std::vector<double> expected = ea.values<double>();
  std::vector<double> expected_lse;
  if (fs::exists(dir / "expected_lse.npy")) expected_lse = npy::load(dir / "expected_lse.npy").values<double>();

  AttentionOptions options;
  std::vector<std::int64_t> key_lengths;
  if (fs::exists(dir / "key_lengths.npy")) key_lengths = npy::load(dir / "key_lengths.npy").values<std::int64_t>();
  options.key_lengths = key_lengths;
  std::vector<std::uint8_t> mask;
  if (fs::exists(dir / "mask.npy")) {
    const npy::Array m = npy::load(dir / "mask.npy");
    REQUIRE(m.shape == std::vector<std::int64_t>{qs[2], ks[2]});
    mask = m.values<std::uint8_t>();
    options.mask = {mask.data(), {qs[2], ks[2]}, {ks[2], 1}};
  }
  if (c.contains("scale")) options.scale = c["scale"].get<float>();
  if (c.contains("window")) options.window = {c["window"][0].get<std::int64_t>(), c["window"][1].get<std::int64_t>()};

  // max |s| of the README's tolerance, from the inputs in double.
  const double scale = c.contains("scale") ? c["scale"].get<double>() : 1.0 / std::sqrt(double(qs[3]));
  double max_abs_score = 0, max_abs_value = 0;
  for (float x : v) max_abs_value = std::max<double>(max_abs_value, std::abs(x));
  const std::int64_t group = qs[1] / ks[1];
  for (std::int64_t b = 0; b < qs[0]; ++b)
    for (std::int64_t h = 0; h < qs[1]; ++h)
      for (std::int64_t i = 0; i < qs[2]; ++i)
        for (std::int64_t j = 0; j < ks[2]; ++j) {
          double dot = 0;
          for (std::int64_t d = 0; d < qs[3]; ++d)
            dot += double(q[((b * qs[1] + h) * qs[2] + i) * qs[3] + d]) *
                   k[((b * ks[1] + h / group) * ks[2] + j) * ks[3] + d];
          max_abs_score = std::max(max_abs_score, std::abs(scale * dot));
        }

  for (Isa isa : testing::runnable_isas()) {
    for (int threads : {1, 2}) {
      CAPTURE(to_string(isa));
      CAPTURE(threads);
      options.isa = isa;
      options.threads = threads;
      std::vector<float> out(expected.size(), std::nanf("")), lse(qs[0] * qs[1] * qs[2], std::nanf(""));
      attention(bhnd<const float>(q.data(), qs[0], qs[1], qs[2], qs[3]),
                bhnd<const float>(k.data(), ks[0], ks[1], ks[2], ks[3]),
                bhnd<const float>(v.data(), vs[0], vs[1], vs[2], vs[3]),
                bhnd(out.data(), qs[0], qs[1], qs[2], vs[3]), options,
                bhn(lse.data(), qs[0], qs[1], qs[2]));
      CHECK(within_tolerance(out, expected, max_abs_score, max_abs_value));
      if (!expected_lse.empty()) CHECK(within_tolerance(lse, expected_lse, max_abs_score, 1.0));
    }
  }
}

}  // namespace

TEST_CASE("golden cases") {
  const fs::path root = golden_dir();
  REQUIRE_MESSAGE(fs::is_directory(root), "golden folder not found: " << root
                                          << " (set LONGATTN_GOLDEN_DIR)");
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (fs::exists(entry.path() / "case.json")) cases.push_back(entry.path());
  }
  std::sort(cases.begin(), cases.end());
  REQUIRE(!cases.empty());
  int ran = 0;
  std::string skipped;
  for (const fs::path& dir : cases) {
    std::ifstream in(dir / "case.json");
    const nlohmann::json c = nlohmann::json::parse(in);
    const std::string missing = unsupported_feature(c);
    if (!missing.empty()) {
      skipped += "  " + dir.filename().string() + " (" + missing + ")\n";
      continue;
    }
    SUBCASE(dir.filename().string().c_str()) { run_case(dir, c); }
    ++ran;
  }
  MESSAGE("golden: ran " << ran << " of " << cases.size() << " cases; skipped, not yet implemented:\n"
                         << skipped);
  CHECK(ran > 0);
}
