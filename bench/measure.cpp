#include "bench/measure.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <thread>
#include <tuple>
#include <utility>

#include "bench/onednn_attention.hpp"
#include "longattn/attention.hpp"
#include "longattn/error.hpp"
#include "longattn/machine.hpp"
#include "longattn/plan.hpp"

namespace longattn::bench {

double seconds_of(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

double median_seconds(const std::function<void()>& fn, int repeats, double min_total_seconds, int max_runs) {
  fn();
  std::vector<double> times;
  double total = 0;
  const std::size_t least = static_cast<std::size_t>(std::max(1, repeats));
  const std::size_t most = std::max<std::size_t>(least, static_cast<std::size_t>(std::max(0, max_runs)));
  while (times.size() < least || (total < min_total_seconds && times.size() < most)) {
    times.push_back(seconds_of(fn));
    total += times.back();
  }
  return median(std::move(times));
}

double read_gbps(int threads, std::int64_t bytes, int rounds) {
  std::vector<std::uint64_t> data(static_cast<std::size_t>(bytes / 8));
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = i;
  return read_gbps(data, threads, rounds);
}

double read_gbps(std::span<const std::uint64_t> data, int threads, int rounds) {
  const std::int64_t slice = static_cast<std::int64_t>(data.size()) / (4 * threads) * 4;
  const std::int64_t words = slice * threads;
  double best = 0;
  std::uint64_t keep = 0;
  for (int round = 0; round < rounds; ++round) {
    std::vector<double> seconds(static_cast<std::size_t>(threads));
    std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads));
    std::vector<std::thread> readers;
    for (int t = 0; t < threads; ++t) {
      readers.emplace_back([&, t] {
        const std::uint64_t* p = data.data() + t * slice;
        std::uint64_t total = 0;
        seconds[t] = seconds_of([&] {
          for (std::int64_t i = 0; i < slice; i += 4) total += p[i] + p[i + 1] + p[i + 2] + p[i + 3];
        });
        sums[t] = total;
      });
    }
    for (std::thread& r : readers) r.join();
    for (std::uint64_t s : sums) keep += s;
    best = std::max(best, double(words * 8) / *std::max_element(seconds.begin(), seconds.end()) * 1e-9);
  }
  return keep == 1 ? 0 : best;  // the sums kept alive
}

std::int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

std::int64_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;  // in KiB
  }
  return 0;
}

Tensor random_tensor(std::int64_t elements, unsigned seed) {
  Tensor t(static_cast<std::size_t>(elements));
  for (std::size_t i = 0; i < t.size(); ++i) {
    // splitmix64 of (seed, i); the top 24 bits give a uniform in [-sqrt(3), sqrt(3)).
    std::uint64_t z = (static_cast<std::uint64_t>(seed) << 40) + i + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    t[i] = (static_cast<float>(z >> 40) * 0x1.0p-24f * 2.0f - 1.0f) * 1.7320508f;
  }
  return t;
}

Bf16Tensor rounded_to_bf16(std::span<const float> x) {
  Bf16Tensor y(x.size());
  std::transform(x.begin(), x.end(), y.begin(), [](float e) { return bf16(e); });
  return y;
}

std::vector<std::array<std::int64_t, 2>> random_layout(std::int64_t nq, std::int64_t nk, std::int64_t block,
                                                       double density) {
  std::mt19937 rng(7);
  std::bernoulli_distribution visible(density);
  std::vector<std::array<std::int64_t, 2>> tiles;
  for (std::int64_t qb = 0; qb < (nq + block - 1) / block; ++qb)
    for (std::int64_t kb = 0; kb < (nk + block - 1) / block; ++kb)
      if (visible(rng)) tiles.push_back({qb, kb});
  return tiles;
}

namespace {

// a and b run in turn `repeats` times after one warm-up each, so that the shared machine's
// drift falls on both alike: the median time of each.
std::pair<double, double> alternated_medians(const std::function<void()>& a, const std::function<void()>& b,
                                             int repeats) {
  a();
  b();
  std::vector<double> first, second;
  for (int i = 0; i < repeats; ++i) {
    first.push_back(seconds_of(a));
    second.push_back(seconds_of(b));
  }
  return {median(first), median(second)};
}

}  // namespace

AttentionBenchResult run_attention_bench(const AttentionBenchConfig& config) {
  if (config.mode != "full" && config.mode != "causal" && config.mode != "window" &&
      config.mode != "block-sparse") {
    throw Error("mode: expected full, causal, window or block-sparse, got \"" + config.mode + "\"");
  }
  if (config.dtype != "fp32" && config.dtype != "bf16" && config.dtype != "bf16-kv") {
    throw Error("dtype: expected fp32, bf16 or bf16-kv, got \"" + config.dtype + "\"");
  }
  if (config.baseline != "onednn" && config.baseline != "none") {
    throw Error("baseline: expected onednn or none, got \"" + config.baseline + "\"");
  }
  AttentionBenchResult r;
  r.config = config;
  const std::int64_t B = config.batch, H = config.heads, N = config.n, D = config.d;
  const std::int64_t Nq = config.nq > 0 ? config.nq : N;
  const std::int64_t Hkv = config.kv_heads > 0 ? config.kv_heads : H;
  const Tensor q = random_tensor(B * H * Nq * D, 1), k = random_tensor(B * Hkv * N * D, 2),
               v = random_tensor(B * Hkv * N * D, 3);
  Tensor out(static_cast<std::size_t>(B * H * Nq * D));
  const auto qv = bhnd(q.data(), B, H, Nq, D), kv = bhnd(k.data(), B, Hkv, N, D),
             vv = bhnd(v.data(), B, Hkv, N, D);
  const auto ov = bhnd(out.data(), B, H, Nq, D);
  // bf16: the same random values rounded, in tensors of their own (the fp32 ones stay for the
  // baseline); bf16-kv: k and v alone (fp32 queries against a bf16 cache).
  const bool bf16_q = config.dtype == "bf16", bf16_kv = config.dtype != "fp32";
  const Bf16Tensor qh = bf16_q ? rounded_to_bf16(q) : Bf16Tensor{};
  const Bf16Tensor kh = bf16_kv ? rounded_to_bf16(k) : Bf16Tensor{}, vh = bf16_kv ? rounded_to_bf16(v) : Bf16Tensor{};
  const auto qhv = bhnd<const bf16>(qh.data(), B, H, Nq, D), khv = bhnd<const bf16>(kh.data(), B, Hkv, N, D),
             vhv = bhnd<const bf16>(vh.data(), B, Hkv, N, D);
  auto call = [&](const AttentionOptions& opts) {
    if (bf16_q) return attention(qhv, khv, vhv, ov, opts);
    return bf16_kv ? attention(qv, khv, vhv, ov, opts) : attention(qv, kv, vv, ov, opts);
  };
  // With reuse_plan, one plan per option set, made at its first (untimed, warm-up) call.
  const AttentionProblem problem{.batch = B, .q_heads = H, .kv_heads = Hkv, .nq = Nq, .nk = N, .d = D,
                                 .q_type = bf16_q ? DType::bf16 : DType::f32,
                                 .kv_type = bf16_kv ? DType::bf16 : DType::f32};
  std::map<const AttentionOptions*, AttentionPlan> plans;
  auto run = [&](const AttentionOptions& opts) {
    if (!config.reuse_plan) return call(opts);
    auto plan = plans.find(&opts);
    if (plan == plans.end()) plan = plans.emplace(&opts, AttentionPlan(problem, opts)).first;
    if (bf16_q) return plan->second.run(qhv, khv, vhv, ov);
    return bf16_kv ? plan->second.run(qv, khv, vhv, ov) : plan->second.run(qv, kv, vv, ov);
  };
  r.kv_bytes = 2 * B * Hkv * N * D * static_cast<std::int64_t>(bf16_kv ? sizeof(bf16) : sizeof(float));

  AttentionOptions options;
  if (config.mode == "causal") options.window = Window::causal();
  if (config.mode == "window") options.window = {config.window_left, config.window_right};
  std::vector<std::array<std::int64_t, 2>> layout;
  if (config.mode == "block-sparse") {
    layout = random_layout(Nq, N, config.block, config.density);
    options.block_sparse = {config.block, config.block, layout};
  }
  options.threads = config.threads;
  options.isa = config.isa;
  options.bf16_products = config.bf16_products;
  options.qk_precision = config.qk_precision;
  options.normalizer = config.normalizer;
  Tensor wq, wk, w;
  if (config.additive_da > 0) {
    const std::int64_t Da = config.additive_da;
    wq = random_tensor(Da * D, 4), wk = random_tensor(Da * D, 5), w = random_tensor(Da, 6);
    for (auto* m : {&wq, &wk})
      for (float& x : *m) x /= std::sqrt(static_cast<float>(D));
    options.additive = {{wq.data(), {Da, D}, {D, 1}}, {wk.data(), {Da, D}, {D, 1}}, w};
  }
  AttentionOptions plain = options;
  options.rope = config.rope;
  options.alibi = config.alibi;
  Tensor relative;
  if (config.relative_clip >= 0) {
    const std::int64_t width = 2 * config.relative_clip + 1;
    relative = random_tensor(H * width, 7);
    options.relative_bias = {relative.data(), {H, width}, {width, 1}};
  }
  options.softcap = config.softcap;
  const Tensor sinks = config.sinks ? random_tensor(H, 8) : Tensor{};
  options.sinks = sinks;
  options.sink_keys = config.sink_keys;
  AttentionStats stats;
  if (config.rope.enabled() || config.alibi || config.relative_clip >= 0 || config.softcap || config.sinks ||
      config.sink_keys > 0) {
    // The same call without these terms, timed alternately with it.
    r.has_plain = true;
    stats = run(options);
    std::tie(r.longattn.seconds, r.plain.seconds) =
        alternated_medians([&] { run(options); }, [&] { run(plain); }, config.repeats);
    r.plain.gflops = stats.flops / r.plain.seconds * 1e-9;
  } else if (config.reuse_plan) {
    // The plan's runs and attention() calls, timed alternately.
    r.has_per_call = true;
    stats = run(options);
    std::tie(r.longattn.seconds, r.per_call.seconds) =
        alternated_medians([&] { run(options); }, [&] { call(options); }, config.repeats);
    r.per_call.gflops = stats.flops / r.per_call.seconds * 1e-9;
  } else {
    r.longattn.seconds = median_seconds([&] { stats = run(options); }, config.repeats);
  }
  r.isa = stats.isa;
  r.bf16_products = stats.bf16_products;
  r.qk_int8 = stats.qk_int8;
  r.flops = stats.flops;
  r.visible_pairs = stats.visible_pairs;
  r.computed_pairs = stats.computed_pairs;
  r.longattn.gflops = r.flops / r.longattn.seconds * 1e-9;
  r.longattn.scratch_bytes = stats.scratch_bytes;

  if (config.baseline == "onednn" && (config.normalizer != Normalizer::softmax || config.additive_da > 0)) {
    throw Error("baseline: the oneDNN baseline computes dot-product softmax attention; use --baseline none with "
                "--normalizer " + to_string(config.normalizer) + (config.additive_da > 0 ? " and --additive-da" : ""));
  }
  if (config.baseline == "onednn") {
    OneDnnAttention baseline(Nq, N, D, D, options, config.threads);
    r.baseline.seconds = median_seconds([&] { baseline.run(qv, kv, vv, ov); }, config.repeats);
    r.baseline.gflops = r.flops / r.baseline.seconds * 1e-9;
    r.baseline.scratch_bytes = baseline.scratch_bytes();
    r.has_baseline = true;
  }
  r.peak_gflops = measure_fp32_peak(r.isa, config.threads).gflops;
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

}  // namespace longattn::bench
