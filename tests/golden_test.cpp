// Every case of the golden folder (computed by an independent float64 implementation) whose
// features the engine implements, on every ISA path and threads 1 and 2; the cases skipped
// are named with the feature they wait for.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/attention_tester.hpp"
#include "tools/golden_cases.hpp"

namespace fs = std::filesystem;
using longattn::golden::CaseResult;

TEST_CASE("golden cases") {
  const fs::path root = longattn::golden::golden_root(LONGATTN_DEFAULT_GOLDEN_DIR);
  REQUIRE_MESSAGE(fs::is_directory(root), "golden folder not found: " << root << " (set LONGATTN_GOLDEN_DIR)");
  const std::vector<fs::path> cases = longattn::golden::case_folders(root);
  REQUIRE(!cases.empty());
  int ran = 0;
  std::string skipped;
  for (const fs::path& dir : cases) {
    std::string skip_reason;
    for (longattn::Isa isa : longattn::testing::runnable_isas()) {
      for (int threads : {1, 2}) {
        const CaseResult r = longattn::golden::run_case(dir, isa, threads);
        if (r.status == CaseResult::Status::skipped) {
          skip_reason = r.detail;
          break;
        }
        INFO(dir.filename().string() << " on " << longattn::to_string(isa) << ", " << threads << " threads: " << r.detail);
        CHECK(r.status == CaseResult::Status::passed);
      }
      if (!skip_reason.empty()) break;
    }
    if (skip_reason.empty()) {
      ++ran;
    } else {
      skipped += "  " + dir.filename().string() + " (" + skip_reason + ")\n";
    }
  }
  MESSAGE("golden: ran " << ran << " of " << cases.size() << " cases; skipped:\n" << skipped);
  CHECK(ran > 0);
}

TEST_CASE("a golden case with a key the runner does not know is skipped, naming the key") {
  const fs::path root = longattn::golden::golden_root(LONGATTN_DEFAULT_GOLDEN_DIR);
  const fs::path dir = fs::temp_directory_path() / ("longattn-golden-unknown-key-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(root / "causal", dir);
  std::string text;
  {
    std::ifstream in(dir / "case.json");
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  text.insert(text.find('{') + 1, "\n \"flash_chunks\": 2,");  // a key the runner does not know
  std::ofstream(dir / "case.json") << text;
  const CaseResult r = longattn::golden::run_case(dir, longattn::Isa::automatic, 1);
  CHECK(r.status == CaseResult::Status::skipped);
  CHECK(r.detail == "not implemented yet: key flash_chunks");
  fs::remove_all(dir);
}
