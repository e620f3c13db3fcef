#include "tools/bench_command.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>
#include <fstream>
#include <iostream>
#include <memory>

#include "bench/measure.hpp"
#include "longattn/error.hpp"
#include "longattn/options.hpp"

namespace longattn::tools {
namespace {

nlohmann::json to_json(const bench::AttentionBenchResult& r) {
  const auto& c = r.config;
  nlohmann::json j = {
      {"mode", c.mode},
      {"normalizer", to_string(c.normalizer)},
      {"additive_da", c.additive_da},
      {"window", c.mode == "window" ? nlohmann::json::array({c.window_left, c.window_right}) : nlohmann::json(nullptr)},
      {"block_sparse", c.mode == "block-sparse" ? nlohmann::json{{"block", c.block}, {"density", c.density}} : nlohmann::json(nullptr)},
      {"visible_pairs", r.visible_pairs},
      {"computed_pairs", r.computed_pairs},
      {"n", c.n},
      {"d", c.d},
      {"heads", c.heads},
      {"kv_heads", c.kv_heads > 0 ? c.kv_heads : c.heads},
      {"batch", c.batch},
      {"threads", c.threads},
      {"isa", to_string(r.isa)},
      {"flops", r.flops},
      {"seconds", r.longattn.seconds},
      {"gflops", r.longattn.gflops},
      {"peak_gflops", r.peak_gflops},
      {"peak_pct", 100.0 * r.longattn.gflops / r.peak_gflops},
      {"scratch_bytes", r.longattn.scratch_bytes},
      {"peak_rss_bytes", r.peak_rss_bytes},
      {"rope", to_string(c.rope.pairing)},
      {"alibi", c.alibi},
      {"relative_clip", c.relative_clip >= 0 ? nlohmann::json(c.relative_clip) : nlohmann::json(nullptr)},
      {"without_position_terms", r.has_plain ? nlohmann::json{{"seconds", r.plain.seconds}, {"gflops", r.plain.gflops}}
                                             : nlohmann::json(nullptr)},
      {"baseline", nullptr},
      {"speedup_vs_baseline", nullptr},
  };
  if (r.has_baseline) {
    j["baseline"] = {{"name", c.baseline},
                     {"seconds", r.baseline.seconds},
                     {"gflops", r.baseline.gflops},
                     {"scratch_bytes", r.baseline.scratch_bytes}};
    j["speedup_vs_baseline"] = r.baseline.seconds / r.longattn.seconds;
  }
  return j;
}

void print_text(const bench::AttentionBenchResult& r) {
  const auto& c = r.config;
  std::string detail;
  if (c.mode == "window") detail = " (" + std::to_string(c.window_left) + ", " + std::to_string(c.window_right) + ")";
  if (c.mode == "block-sparse") detail = " (" + std::to_string(c.block) + "-tiles, density " + std::to_string(c.density) + ")";
  if (c.normalizer != Normalizer::softmax) detail += " " + to_string(c.normalizer);
  if (c.additive_da > 0) detail += " additive Da=" + std::to_string(c.additive_da);
  if (c.rope.enabled()) detail += " rope=" + to_string(c.rope.pairing);
  if (c.alibi) detail += " alibi";
  if (c.relative_clip >= 0) detail += " relative K=" + std::to_string(c.relative_clip);
  std::printf("attention %s%s  B=%lld H=%lld Hkv=%lld n=%lld D=%lld  threads=%d  isa=%s\n",
              c.mode.c_str(), detail.c_str(), (long long)c.batch, (long long)c.heads,
              (long long)(c.kv_heads > 0 ? c.kv_heads : c.heads), (long long)c.n, (long long)c.d,
              c.threads, to_string(r.isa).c_str());
  std::printf("  fp32 FMA peak (measured)  %8.1f GFLOP/s\n", r.peak_gflops);
  std::printf("  longattn   %9.4f s  %8.1f GFLOP/s  %5.1f %% of peak  scratch %8.2f MiB\n",
              r.longattn.seconds, r.longattn.gflops, 100.0 * r.longattn.gflops / r.peak_gflops,
              r.longattn.scratch_bytes / 1048576.0);
  if (r.has_plain) {
    std::printf("  without position terms %9.4f s  %8.1f GFLOP/s  (with them: %.3fx the time)\n", r.plain.seconds,
                r.plain.gflops, r.longattn.seconds / r.plain.seconds);
  }
  if (r.has_baseline) {
    std::printf("  %-9s  %9.4f s  %8.1f GFLOP/s  %5.1f %% of peak  scratch %8.2f MiB\n",
                c.baseline.c_str(), r.baseline.seconds, r.baseline.gflops,
                100.0 * r.baseline.gflops / r.peak_gflops, r.baseline.scratch_bytes / 1048576.0);
    std::printf("  speedup vs %s: %.2fx\n", c.baseline.c_str(), r.baseline.seconds / r.longattn.seconds);
  }
  std::printf("  scores computed / visible: %.3f\n", double(r.computed_pairs) / double(std::max<std::int64_t>(1, r.visible_pairs)));
  std::printf("  peak RSS of the process: %.1f MiB\n", r.peak_rss_bytes / 1048576.0);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto config = std::make_shared<bench::AttentionBenchConfig>();
  auto json = std::make_shared<bool>(false);
  auto causal = std::make_shared<bool>(false);
  auto isa = std::make_shared<std::string>("auto");
  auto output = std::make_shared<std::string>();
  auto normalizer = std::make_shared<std::string>("softmax");
  CLI::App* cmd = app.add_subcommand("bench", "Time attention on random inputs against a baseline");
  cmd->add_option("--mode", config->mode, "full, causal, window or block-sparse")
      ->check(CLI::IsMember({"full", "causal", "window", "block-sparse"}));
  auto window = std::make_shared<std::vector<std::int64_t>>();
  cmd->add_option("--window", *window, "LEFT RIGHT of --mode window (-1 = unbounded); default 256 256")
      ->expected(2)->check(CLI::Range(std::int64_t{-1}, std::numeric_limits<std::int64_t>::max()));
  cmd->add_option("--normalizer", *normalizer, "softmax, sigmoid, relu or linear")
      ->check(CLI::IsMember({"softmax", "sigmoid", "relu", "linear"}));
  cmd->add_option("--additive-da", config->additive_da, "Additive scores wᵀ tanh(Wq q + Wk k) with Da features (random weights)")
      ->check(CLI::NonNegativeNumber);
  auto rope = std::make_shared<std::string>("none");
  cmd->add_option("--rope", *rope, "RoPE pairing: none, half or interleaved")
      ->check(CLI::IsMember({"none", "half", "interleaved"}));
  cmd->add_flag("--alibi", config->alibi, "ALiBi score bias");
  cmd->add_option("--relative-k", config->relative_clip, "Relative position bias with a random [H, 2K+1] table")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--block", config->block, "Tile size of --mode block-sparse")->check(CLI::PositiveNumber);
  cmd->add_option("--density", config->density, "Fraction of tiles visible in --mode block-sparse")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--causal", *causal, "Same as --mode causal");
  cmd->add_option("--n", config->n, "Sequence length")->check(CLI::PositiveNumber);
  cmd->add_option("--d", config->d, "Head dimension")->check(CLI::PositiveNumber);
  cmd->add_option("--heads", config->heads, "Query heads")->check(CLI::PositiveNumber);
  cmd->add_option("--kv-heads", config->kv_heads, "Key/value heads (default: --heads)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", config->batch, "Batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", config->threads, "Worker threads")->check(CLI::PositiveNumber);
  cmd->add_option("--isa", *isa, "auto, avx512, avx2 or scalar")->check(CLI::IsMember({"auto", "avx512", "avx2", "scalar"}));
  cmd->add_option("--baseline", config->baseline, "onednn or none")->check(CLI::IsMember({"onednn", "none"}));
  cmd->add_option("--repeats", config->repeats, "Timed runs after a warm-up; the median is reported")->check(CLI::PositiveNumber);
  cmd->add_flag("--json", *json, "Print one JSON object instead of text");
  cmd->add_option("--output", *output, "Also write the JSON object to this file");
  cmd->callback([=] {
    if (*causal) config->mode = "causal";
    if (!window->empty()) {
      config->mode = "window";
      config->window_left = (*window)[0];
      config->window_right = (*window)[1];
    }
    config->isa = parse_isa(*isa);
    config->rope.pairing = parse_rope_pairing(*rope);
    config->normalizer = parse_normalizer(*normalizer);
    const bench::AttentionBenchResult result = bench::run_attention_bench(*config);
    const nlohmann::json j = to_json(result);
    if (*json) {
      std::cout << j.dump(2) << std::endl;
    } else {
      print_text(result);
    }
    if (!output->empty()) {
      std::ofstream file(*output);
      file << j.dump(2) << '\n';
      if (!file) throw Error(*output + ": cannot write");
    }
  });
}

}  // namespace longattn::tools
