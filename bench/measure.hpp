// How the bench command, the report and the Google Benchmark suites measure: one place, so
// their figures agree.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bench/cache_line_allocator.hpp"
#include "longattn/bf16.hpp"
#include "longattn/options.hpp"

namespace longattn::bench {

// Runs fn once to warm up, then at least `repeats` times, and more (up to max_runs) while the
// runs add up to less than min_total_seconds, so quick calls are not one timer tick; returns
// the median wall time in seconds.
double median_seconds(const std::function<void()>& fn, int repeats, double min_total_seconds = 0,
                      int max_runs = 0);

// The rate (GB/s) at which `threads` threads read `data` together, each its own slice timed
// on its own (so a pool's wake-up is not counted), best of `rounds`; the first overload reads
// `bytes` it allocates.
double read_gbps(std::span<const std::uint64_t> data, int threads, int rounds);
double read_gbps(int threads, std::int64_t bytes, int rounds);

// Wall time of one call of fn, in seconds.
double seconds_of(const std::function<void()>& fn);

// The median of `values` (the mean of the middle two for an even count).
double median(std::vector<double> values);

// Peak resident set of this process so far, in bytes.
std::int64_t peak_rss_bytes();

// A field of /proc/self/status in bytes (VmRSS: resident now, VmHWM: its high-water mark);
// 0 where the field is missing.
std::int64_t status_bytes(const std::string& field);

// `elements` floats, uniform with mean 0 and variance 1, a pure function of (seed, index):
// fast enough to fill the gigabytes of a million-token run.
Tensor random_tensor(std::int64_t elements, unsigned seed);

// x's values rounded to bf16, stored like a Tensor (cache-line aligned).
using Bf16Tensor = std::vector<bf16, CacheLineAllocator<bf16>>;
Bf16Tensor rounded_to_bf16(std::span<const float> x);

// A block-sparse layout of an nq × nk score matrix in block × block tiles, each visible with
// `density` (seeded: the same layout every run).
std::vector<std::array<std::int64_t, 2>> random_layout(std::int64_t nq, std::int64_t nk, std::int64_t block,
                                                       double density);

struct AttentionBenchConfig {
  std::string mode = "full";  // full | causal | window | block-sparse
  std::int64_t window_left = 256, window_right = 256;  // mode window
  std::int64_t block = 256;  // mode block-sparse: block size of the layout
  double density = 0.1;      // mode block-sparse: fraction of tiles visible (random, seeded)
  Normalizer normalizer = Normalizer::softmax;
  std::int64_t additive_da = 0;  // > 0: additive scores with random Wq, Wk [Da, D], w [Da]
  Rope rope;                     // position terms inside the kernel ...
  bool alibi = false;
  std::int64_t relative_clip = -1;  // >= 0: a random relative bias table [H, 2K+1]
  std::optional<float> softcap;     // ... and the long-context score terms: soft-capping,
  bool sinks = false;               // random sink logits [H],
  std::int64_t sink_keys = 0;       // sink keys beside a window
  std::int64_t n = 16384, d = 64, heads = 8, kv_heads = 0;  // kv_heads 0 = heads
  std::int64_t nq = 0;  // queries, 0 = n: fewer are new tokens against n keys (decoding)
  std::int64_t batch = 1;
  int threads = 1;
  Isa isa = Isa::automatic;
  // fp32 | bf16 (q, k, v) | bf16-kv (fp32 q, bf16 k and v): what longattn is given; the
  // baseline runs fp32.
  std::string dtype = "fp32";
  Bf16Products bf16_products = Bf16Products::native;  // with dtype bf16; with int8 scores, P·V in bf16
  QkPrecision qk_precision = QkPrecision::inputs;
  std::string baseline = "onednn";  // onednn | none
  int repeats = 3;
  // Time runs of one AttentionPlan made before the timing (a decoding loop's way), alternating
  // with attention() calls of the same problem; otherwise attention() calls alone.
  bool reuse_plan = false;
};

struct Measurement {
  double seconds = 0;
  double gflops = 0;
  std::int64_t scratch_bytes = 0;
};

struct AttentionBenchResult {
  AttentionBenchConfig config;
  Isa isa = Isa::automatic;
  bool bf16_products = false;  // the bf16 pairs multiplied natively (AttentionStats)
  bool qk_int8 = false;        // q·k ran on int8 (AttentionStats)
  double flops = 0;  // DESIGN.md §4
  std::int64_t visible_pairs = 0;
  std::int64_t computed_pairs = 0;  // one call's
  std::int64_t kv_bytes = 0;        // of k and v: what a call reads at least once
  Measurement longattn;
  // With position terms, soft-capping or sinks: the same call without them, timed in the same
  // run (their cost).
  bool has_plain = false;
  Measurement plain;
  // With reuse_plan: attention() per call, timed alternately with the plan's runs.
  bool has_per_call = false;
  Measurement per_call;
  bool has_baseline = false;
  Measurement baseline;
  double peak_gflops = 0;  // measured fp32 FMA peak for this ISA and thread count
  std::int64_t peak_rss_bytes = 0;
};

// Times longattn (and the baseline) on random inputs of the configured shape.
AttentionBenchResult run_attention_bench(const AttentionBenchConfig& config);

}  // namespace longattn::bench
