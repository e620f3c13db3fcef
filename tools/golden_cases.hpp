// The golden cases of tests/golden (computed by an independent float64 implementation):
// what a case asks, whether longattn implements it yet, and how far its result is from the
// expected one under the folder README's tolerance. Used by `longattn golden` and the tests.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "longattn/options.hpp"

namespace longattn::golden {

struct CaseResult {
  enum class Status { passed, failed, skipped } status = Status::skipped;
  std::string detail;      // why skipped, or the error against its bound
  double max_error = 0;    // max |out − expected| (and |lse − expected| where given)
  double bound = 0;        // the README's tolerance for this case
};

// The folder README's tolerance: rel · max(1, max |expected|) + score_rel · max |s| · max |v|
// (rel = 1e-5 for fp32, 2e-2 for bf16; score_rel = 1e-6, the scores' fp32 error).
double tolerance(double max_abs_expected, double max_abs_score, double max_abs_value, double rel = 1e-5,
                 double score_rel = 1e-6);

// The int8 scores' score_rel (QkPrecision::int8): q and k each rounded to 1/254 of their
// row's largest element (README "int8 scores"); rel is bf16's.
inline constexpr double kInt8ScoreRel = 1.0 / 64;

// The golden folder: $LONGATTN_GOLDEN_DIR when set, `fallback` otherwise.
std::filesystem::path golden_root(const std::filesystem::path& fallback);

// The case folders (those holding a case.json) under `root`, sorted by name.
std::vector<std::filesystem::path> case_folders(const std::filesystem::path& root);

// Why longattn cannot run the case in `dir` yet (the feature it waits for), or "" when it
// can. Throws longattn::Error when case.json is missing or malformed.
std::string unsupported_feature(const std::filesystem::path& dir);

// What the case's q, k and v are given to attention() as: the fp32 of the .npy files, or
// those rounded to bf16 (attention cases only; the README's bf16 tolerance applies); or the
// fp32 run with int8 scores (softmax attention() cases without soft-capping or additive
// scores; bf16's rel and kInt8ScoreRel).
enum class Inputs { fp32, bf16, int8_scores };

// Runs the case in `dir` on `isa` with `threads` threads. Throws longattn::Error when the
// folder is malformed (missing or unreadable case.json or .npy files).
CaseResult run_case(const std::filesystem::path& dir, Isa isa, int threads, Inputs inputs = Inputs::fp32);

}  // namespace longattn::golden
