// One attention problem as the differential checks run it: a description (sizes, options, how
// the random inputs are drawn and laid out), run on chosen ISA paths and thread counts, each
// result compared with the fp64 reference and with the other thread counts' bits. The tests
// (tests/attention_tester.hpp) and `longattn selftest` both run cases through this.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "check/reference_attention.hpp"
#include "longattn/error.hpp"
#include "longattn/options.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::check {

// How q, k, v and out lie: bhdn stores each head feature-major ([B, H, D, N], a feature stride
// other than 1); padded is BHND with rows 3 floats longer than their features (a strided view
// of a larger buffer, never vector-aligned).
enum class Layout { bhnd, bnhd, bhdn, padded };
std::string to_string(Layout layout);

enum class Bf16Inputs { none, all, keys_values };  // fp32; bf16 q, k, v; fp32 q with bf16 k, v

// Element [b, h, n, c] of q, k or v set to `value` once the inputs are drawn.
struct Poison {
  char tensor;  // 'q', 'k' or 'v'
  std::int64_t b, h, n, c;
  float value;
};

struct AttentionCase {
  reference::Problem problem;  // sizes and options; q, k, v, mask, layouts and weights drawn by run()
  Layout layout = Layout::bhnd;
  unsigned seed = 1;
  float magnitude = 1.0f;    // standard deviation of q, k and v
  float value_scale = 1.0f;  // v alone times this
  // Key n's feature 0 grows by drift · n and every query's feature 0 is 1 + |q0|: row maxima
  // that keep growing (drift > 0) or are set by the first keys (drift < 0).
  float drift = 0.0f;
  double mask_density = -1;   // >= 0: a random [Nq, Nk] mask, entries visible with this chance
  double block_density = -1;  // >= 0 with problem.block_q: random visible tiles
  std::int64_t additive_da = 0;     // > 0: additive scores with random Wq, Wk [Da, D] and w
  std::int64_t relative_clip = -1;  // >= 0: a random relative bias table [Hq, 2K+1]
  // A random score bias [B, Hq, Nq, Nk] of N(0, 1) entries, -inf with chance bias_hidden,
  // given with this many dimensions of its own (2: one [Nq, Nk] for every batch and head, 3:
  // one per head, 4: one per batch and head), the others stride 0. 0: none.
  int bias_dims = 0;
  double bias_hidden = 0;
  bool sinks = false;  // random sink logits [Hq] (problem.sinks), N(0, 2)
  Bf16Inputs bf16 = Bf16Inputs::none;
  // int8 scores (QkPrecision::int8) on the paths that have them, P·V in bf16 and in fp32;
  // checked with golden::kInt8ScoreRel beside the bf16 tolerance.
  bool qk_int8 = false;
  // White box: the engine's packed-key budget and key chunk bytes (0: the plan's own).
  std::int64_t packed_budget = 0, chunk_bytes = 0;
  std::vector<Poison> poisons;

  std::string describe() const;  // one line: sizes and every option set
};

// An error against its expectation and the tolerance it had to meet.
struct Comparison {
  bool passed = true;
  double error = 0, bound = 0;  // max |actual - expected| over finite expectations; tolerance
  std::string failure;          // why not, when !passed
};

// Whether actual meets the tolerance of tests/golden/README.md (golden::tolerance) with
// non-finite expectations met exactly (NaN by NaN, ±inf by the same inf) and no NaN or inf
// where a finite value is expected. score_rel: the relative error of the scores (fp32's
// 1e-6, or bf16's where rotated q and k are rounded to bf16).
Comparison compare(const std::vector<float>& actual, const std::vector<double>& expected, double max_abs_score,
                   double max_abs_value, double rel = 1e-5, double score_rel = 1e-6);

// What one case's runs found.
struct CaseReport {
  std::string description;
  std::vector<std::string> failures;  // each names its path: "avx512 native, 2 threads: ..."
  double worst_ratio = 0;             // the largest error / bound of any comparison
  int runs = 0;                       // engine calls made
  bool passed() const { return failures.empty(); }
};

// The paths and thread counts to run: every ISA with threads[0] first, whose bits the other
// counts must reproduce.
struct RunOn {
  std::vector<Isa> isas;
  std::vector<int> threads = {1, 2};
};

// The ISA paths this CPU runs (the scalar one always), or those of them that
// LONGATTN_TEST_ISAS names (throws Error if it names one the CPU cannot run).
std::vector<Isa> runnable_isas();

CaseReport run(const AttentionCase& c, const RunOn& on);

// Whether int8 scores (QkPrecision::int8) run for nq query rows per head, as the engine plans
// them: where a kv head's rows fill more than one query block; fewer decode on fp32 rows.
bool int8_scores_run(std::int64_t q_heads, std::int64_t kv_heads, std::int64_t nq);

// Whether `isa` has the int8 scores' kernels on this CPU (automatic: the path LONGATTN_ISA or
// the CPU picks, as a call or the command line would run). Inline: the ring and command-line
// tests use it without this library.
inline bool int8_scores_available(Isa isa = Isa::automatic) {
  try {
    return simd::kernels_for(isa).int8_dot != nullptr;
  } catch (const Error&) {  // a path this CPU cannot run
    return false;
  }
}

}  // namespace longattn::check
