#include "tools/bench_command.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <charconv>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>
#include <fstream>
#include <iostream>
#include <memory>

#include "bench/decode_bench.hpp"
#include "bench/layer_bench.hpp"
#include "bench/measure.hpp"
#include "longattn/error.hpp"
#include "longattn/kv_cache.hpp"
#include "longattn/options.hpp"
#include "tools/ring_bench.hpp"

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
      {"nq", c.nq > 0 ? c.nq : c.n},
      {"d", c.d},
      {"heads", c.heads},
      {"kv_heads", c.kv_heads > 0 ? c.kv_heads : c.heads},
      {"batch", c.batch},
      {"threads", c.threads},
      {"isa", to_string(r.isa)},
      {"dtype", c.dtype},
      {"plan", c.reuse_plan ? "reused" : "per call"},
      {"bf16_products", c.dtype == "bf16" ? nlohmann::json(r.bf16_products ? "native" : "widened") : nlohmann::json(nullptr)},
      {"qk_precision", r.qk_int8 ? "int8" : "inputs"},
      {"flops", r.flops},
      {"seconds", r.longattn.seconds},
      {"gflops", r.longattn.gflops},
      {"peak_gflops", r.peak_gflops},
      {"peak_pct", 100.0 * r.longattn.gflops / r.peak_gflops},
      {"scratch_bytes", r.longattn.scratch_bytes},
      {"kv_gbps", r.kv_bytes / r.longattn.seconds * 1e-9},
      {"peak_rss_bytes", r.peak_rss_bytes},
      {"rope", to_string(c.rope.pairing)},
      {"alibi", c.alibi},
      {"relative_clip", c.relative_clip >= 0 ? nlohmann::json(c.relative_clip) : nlohmann::json(nullptr)},
      {"softcap", c.softcap ? nlohmann::json(*c.softcap) : nlohmann::json(nullptr)},
      {"sinks", c.sinks},
      {"sink_keys", c.sink_keys},
      {"attention_per_call", r.has_per_call ? nlohmann::json{{"seconds", r.per_call.seconds}, {"gflops", r.per_call.gflops}}
                                            : nlohmann::json(nullptr)},
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

nlohmann::json to_json(const bench::LayerBenchResult& r) {
  const auto& c = r.config;
  const double layer_rate = (r.attention_flops + r.projection_flops) / r.layer_seconds * 1e-9;
  const std::int64_t beyond = r.peak_rss_bytes - r.base_rss_bytes - r.io_bytes - r.weight_bytes - r.qkv_bytes;
  return {
      {"mode", "mha"},
      {"n", c.n},
      {"e", c.e},
      {"heads", c.heads},
      {"kv_heads", c.kv_heads > 0 ? c.kv_heads : c.heads},
      {"d", c.e / c.heads},
      {"batch", c.batch},
      {"window", nlohmann::json::array({c.attention.window.left, c.attention.window.right})},
      {"rope", to_string(c.attention.rope.pairing)},
      {"alibi", c.attention.alibi},
      {"threads", c.threads},
      {"isa", to_string(r.isa)},
      {"precision", to_string(r.precision)},
      {"qk_precision", r.qk_int8 ? "int8" : "inputs"},
      {"attention_flops", r.attention_flops},
      {"projection_flops", r.projection_flops},
      {"layer", {{"seconds", r.layer_seconds}, {"projection_seconds", r.layer_projection_seconds},
                 {"attention_seconds", r.layer_attention_seconds}, {"output_seconds", r.layer_output_seconds},
                 {"gflops", layer_rate}}},
      {"alone", {{"gemm_seconds", r.gemm_alone_seconds}, {"kernel_seconds", r.kernel_alone_seconds},
                 {"gemm_gflops", r.projection_flops / r.gemm_alone_seconds * 1e-9},
                 {"kernel_gflops", r.attention_flops / r.kernel_alone_seconds * 1e-9}}},
      {"plain_layer_seconds", r.plain_layer_seconds > 0 ? nlohmann::json(r.plain_layer_seconds) : nlohmann::json(nullptr)},
      {"layer_over_parts", r.layer_seconds / (r.gemm_alone_seconds + r.kernel_alone_seconds)},
      {"peak_gflops", r.peak_gflops},
      {"memory", {{"peak_rss_bytes", r.peak_rss_bytes}, {"base_rss_bytes", r.base_rss_bytes}, {"io_bytes", r.io_bytes},
                  {"weight_bytes", r.weight_bytes}, {"qkv_bytes", r.qkv_bytes},
                  {"kernel_scratch_bytes", r.kernel_scratch_bytes}, {"beyond_qkv_bytes", beyond}}},
  };
}

void print_text(const bench::LayerBenchResult& r) {
  const auto& c = r.config;
  const auto& a = c.attention;
  std::string detail;
  if (!a.window.is_full()) detail += " window (" + std::to_string(a.window.left) + ", " + std::to_string(a.window.right) + ")";
  if (a.rope.enabled()) detail += " rope=" + to_string(a.rope.pairing);
  if (a.alibi) detail += " alibi";
  if (r.qk_int8) detail += " int8 q·k";
  constexpr double MiB = 1048576.0;
  std::printf("multi-head layer%s  B=%lld n=%lld E=%lld H=%lld Hkv=%lld D=%lld  threads=%d  isa=%s  %s\n",
              detail.c_str(), (long long)c.batch, (long long)c.n, (long long)c.e, (long long)c.heads,
              (long long)(c.kv_heads > 0 ? c.kv_heads : c.heads), (long long)(c.e / c.heads), c.threads,
              to_string(r.isa).c_str(), to_string(r.precision).c_str());
  std::printf("  fp32 FMA peak (measured)  %8.1f GFLOP/s\n", r.peak_gflops);
  std::printf("  layer forward   %9.4f s   projections %.4f s  attention %.4f s  output %.4f s\n", r.layer_seconds,
              r.layer_projection_seconds, r.layer_attention_seconds, r.layer_output_seconds);
  std::printf("  fp32 parts alone %8.4f s   GEMMs %.4f s (%.1f GFLOP/s)  kernel %.4f s (%.1f GFLOP/s, %.1f %% of peak)\n",
              r.gemm_alone_seconds + r.kernel_alone_seconds, r.gemm_alone_seconds,
              r.projection_flops / r.gemm_alone_seconds * 1e-9, r.kernel_alone_seconds,
              r.attention_flops / r.kernel_alone_seconds * 1e-9,
              100.0 * r.attention_flops / r.kernel_alone_seconds * 1e-9 / r.peak_gflops);
  if (r.plain_layer_seconds > 0) {
    std::printf("  same layer without RoPE/ALiBi %9.4f s  (with them: %.3fx the time)\n", r.plain_layer_seconds,
                r.layer_seconds / r.plain_layer_seconds);
  }
  std::printf("  layer / (GEMMs alone + kernel alone): %.3f\n", r.layer_seconds / (r.gemm_alone_seconds + r.kernel_alone_seconds));
  const std::int64_t beyond = r.peak_rss_bytes - r.base_rss_bytes - r.io_bytes - r.weight_bytes - r.qkv_bytes;
  std::printf("  peak RSS %.1f MiB = process %.1f + x, y %.1f + weights (caller's and layer's) %.1f + Q|K|V %.1f + "
              "beyond %.1f MiB (kernel scratch %.1f)\n",
              r.peak_rss_bytes / MiB, r.base_rss_bytes / MiB, r.io_bytes / MiB, r.weight_bytes / MiB, r.qkv_bytes / MiB,
              beyond / MiB, r.kernel_scratch_bytes / MiB);
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
  if (c.softcap) detail += " softcap=" + std::to_string(*c.softcap);
  if (c.sinks) detail += " sinks";
  if (c.sink_keys > 0) detail += " sink_keys=" + std::to_string(c.sink_keys);
  const std::string queries = c.nq > 0 && c.nq != c.n ? " nq=" + std::to_string(c.nq) : "";
  const std::string products = (c.dtype != "bf16" ? "" : r.bf16_products ? " (native bf16 products)" : " (widened to fp32)") +
                               std::string(r.qk_int8 ? ", int8 q·k" : "");
  std::printf("attention %s%s  B=%lld H=%lld Hkv=%lld n=%lld%s D=%lld  threads=%d  isa=%s  %s inputs%s\n",
              c.mode.c_str(), detail.c_str(), (long long)c.batch, (long long)c.heads,
              (long long)(c.kv_heads > 0 ? c.kv_heads : c.heads), (long long)c.n, queries.c_str(), (long long)c.d,
              c.threads, to_string(r.isa).c_str(), c.dtype.c_str(), products.c_str());
  std::printf("  fp32 FMA peak (measured)  %8.1f GFLOP/s\n", r.peak_gflops);
  std::printf("  longattn   %9.4f s  %8.1f GFLOP/s  %5.1f %% of peak  scratch %8.2f MiB\n",
              r.longattn.seconds, r.longattn.gflops, 100.0 * r.longattn.gflops / r.peak_gflops,
              r.longattn.scratch_bytes / 1048576.0);
  if (r.has_per_call) {
    std::printf("  attention() per call   %9.4f s  %8.1f GFLOP/s  (the plan's run: %.3fx its time)\n", r.per_call.seconds,
                r.per_call.gflops, r.longattn.seconds / r.per_call.seconds);
  }
  if (r.has_plain) {
    std::printf("  without those terms    %9.4f s  %8.1f GFLOP/s  (with them: %.3fx the time)\n", r.plain.seconds,
                r.plain.gflops, r.longattn.seconds / r.plain.seconds);
  }
  if (r.has_baseline) {
    std::printf("  %-9s  %9.4f s  %8.1f GFLOP/s  %5.1f %% of peak  scratch %8.2f MiB\n",
                c.baseline.c_str(), r.baseline.seconds, r.baseline.gflops,
                100.0 * r.baseline.gflops / r.peak_gflops, r.baseline.scratch_bytes / 1048576.0);
    std::printf("  speedup vs %s: %.2fx\n", c.baseline.c_str(), r.baseline.seconds / r.longattn.seconds);
  }
  if (!queries.empty()) {  // few queries: the call streams k and v, and memory is the limit
    std::printf("  k and v (%.1f MiB) read at %.1f GB/s\n", r.kv_bytes / 1048576.0, r.kv_bytes / r.longattn.seconds * 1e-9);
  }
  std::printf("  scores computed / visible: %.3f\n", double(r.computed_pairs) / double(std::max<std::int64_t>(1, r.visible_pairs)));
  std::printf("  peak RSS of the process: %.1f MiB\n", r.peak_rss_bytes / 1048576.0);
}

nlohmann::json to_json(const bench::DecodeBenchResult& r) {
  const auto& c = r.config;
  nlohmann::json contexts = nlohmann::json::array();
  for (const auto& context : r.contexts) {
    nlohmann::json caches = nlohmann::json::array();
    for (const auto& cache : context.caches) {
      caches.push_back({{"cache", to_string(cache.type)}, {"seconds", cache.seconds},
                        {"tokens_per_second", cache.tokens_per_second}, {"bytes_read", cache.bytes_read},
                        {"gbps", cache.gbps}, {"of_read_rate", cache.gbps / r.read_gbps},
                        {"over_dense", context.dense_seconds / cache.seconds},
                        {"bytes_per_token", cache.bytes_per_token}, {"append_microseconds", cache.append_microseconds},
                        {"qk_precision", cache.qk_int8 ? "int8" : "inputs"}});
    }
    contexts.push_back({{"context", context.context}, {"dense_fp32_seconds", context.dense_seconds},
                        {"dense_fp32_tokens_per_second", c.batch / context.dense_seconds}, {"caches", caches}});
  }
  return {{"mode", "decode"}, {"page_tokens", c.page_tokens}, {"batch", c.batch}, {"heads", c.heads},
          {"kv_heads", c.kv_heads}, {"d", c.d}, {"threads", c.threads}, {"repeats", c.repeats},
          {"isa", to_string(r.isa)}, {"read_gbps", r.read_gbps}, {"contexts", contexts}};
}

void print_text(const bench::DecodeBenchResult& r) {
  const auto& c = r.config;
  std::printf("decoding from a paged KvCache  S=%lld Hq=%lld Hkv=%lld D=%lld  page=%lld  threads=%d  isa=%s\n",
              (long long)c.batch, (long long)c.heads, (long long)c.kv_heads, (long long)c.d, (long long)c.page_tokens,
              c.threads, to_string(r.isa).c_str());
  std::printf("  plain read loop: %.1f GB/s\n", r.read_gbps);
  for (const auto& context : r.contexts) {
    std::printf("  context %lld: dense fp32 k, v %.3f ms  %.0f tokens/s\n", (long long)context.context,
                context.dense_seconds * 1e3, c.batch / context.dense_seconds);
    for (const auto& cache : context.caches) {
      std::printf("    %-4s cache  %8.3f ms  %8.0f tokens/s  %5.2fx dense  %6.1f GB/s (%3.0f %% of read)  "
                  "%lld B/token  append %.1f us%s\n",
                  to_string(cache.type).c_str(), cache.seconds * 1e3, cache.tokens_per_second,
                  context.dense_seconds / cache.seconds, cache.gbps, 100.0 * cache.gbps / r.read_gbps,
                  (long long)cache.bytes_per_token, cache.append_microseconds, cache.qk_int8 ? "  int8 q·k" : "");
    }
  }
}

// Text or JSON on stdout, and the JSON in `output` when named.
template <class Result>
void emit(const Result& result, bool json, const std::string& output) {
  const nlohmann::json j = to_json(result);
  if (json) {
    std::cout << j.dump(2) << std::endl;
  } else {
    print_text(result);
  }
  if (!output.empty()) {
    std::ofstream file(output);
    file << j.dump(2) << '\n';
    if (!file) throw Error(output + ": cannot write");
  }
}

// The flags of --mode decode alone.
void add_decode_options(CLI::App* cmd, bench::DecodeBenchConfig& decode, std::vector<std::string>& caches) {
  cmd->add_option("--cache", caches, "Cache types of --mode decode: fp32, bf16, int8 (comma-separated; default fp32)")
      ->delimiter(',')->check(CLI::IsMember({"fp32", "bf16", "int8"}));
  cmd->add_option("--page", decode.page_tokens, "Tokens per page of --mode decode (16 ... 256)");
  cmd->add_option("--contexts", decode.contexts, "Context lengths of --mode decode (comma-separated)")
      ->delimiter(',')->check(CLI::PositiveNumber);
}

// --mode decode's settings: its own flags and the shared shape, threads and repeats.
bench::DecodeBenchConfig decode_config(const bench::AttentionBenchConfig& shared, bench::DecodeBenchConfig decode,
                                       const std::vector<std::string>& caches, Isa isa) {
  decode.caches.clear();
  for (const std::string& name : caches) decode.caches.push_back(parse_cache_type(name));
  if (decode.caches.empty()) decode.caches.push_back(CacheType::fp32);
  decode.batch = shared.batch, decode.heads = shared.heads, decode.d = shared.d;
  decode.kv_heads = shared.kv_heads > 0 ? shared.kv_heads : shared.heads;
  decode.threads = shared.threads, decode.isa = isa, decode.qk_precision = shared.qk_precision;
  if (shared.repeats != 3) decode.repeats = shared.repeats;  // a decoding step is short: 20 unless asked
  return decode;
}

// The --ring benchmark's settings from the shared flags.
RingBenchConfig ring_config(const bench::AttentionBenchConfig& c, bool causal, const std::vector<std::string>& model,
                            RingBenchConfig ring) {
  if (c.mode != "full" && c.mode != "causal") throw Error("--ring: runs --mode full or causal");
  if (c.nq > 0 || c.dtype != "fp32") throw Error("--ring: self-attention in fp32; drop --nq and --dtype");
  ring.n = c.n, ring.d = c.d, ring.heads = c.heads, ring.kv_heads = c.kv_heads, ring.batch = c.batch;
  ring.causal = causal || c.mode == "causal";
  ring.threads = c.threads > 0 ? c.threads : 1;
  ring.repeats = c.repeats;
  if (!model.empty()) {
    std::stringstream nodes(model[0]);
    for (std::string item; std::getline(nodes, item, ',');) {
      int count = 0;
      const auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), count);
      if (error != std::errc() || end != item.data() + item.size() || count < 1) {
        throw Error("--model: expected NODES as counts >= 1 separated by commas (8,64,256), got " + model[0]);
      }
      ring.model_nodes.push_back(count);
    }
    if (ring.model_nodes.empty()) throw Error("--model: expected NODES, e.g. 8,64,256");
    char* end = nullptr;
    ring.link_gbps = std::strtod(model[1].c_str(), &end);
    if (model[1].empty() || *end != '\0' || !(ring.link_gbps >= 0)) {
      throw Error("--model: expected LINK_GBPS, a rate >= 0 in Gbit/s (0: measure it here), got " + model[1]);
    }
  }
  return ring;
}

}  // namespace

void add_bench_command(CLI::App& app, Actions actions) {
  auto config = std::make_shared<bench::AttentionBenchConfig>();
  auto json = std::make_shared<bool>(false);
  auto causal = std::make_shared<bool>(false);
  auto isa = std::make_shared<std::string>("auto");
  auto output = std::make_shared<std::string>();
  auto normalizer = std::make_shared<std::string>("softmax");
  CLI::App* cmd = app.add_subcommand("bench", "Time attention on random inputs against a baseline");
  cmd->add_option("--mode", config->mode,
                  "full, causal, window, block-sparse, mha (the multi-head layer) or decode (from a paged KvCache)")
      ->check(CLI::IsMember({"full", "causal", "window", "block-sparse", "mha", "decode"}));
  auto decode = std::make_shared<bench::DecodeBenchConfig>();
  auto caches = std::make_shared<std::vector<std::string>>();
  add_decode_options(cmd, *decode, *caches);
  auto embed = std::make_shared<std::int64_t>(512);
  cmd->add_option("--e", *embed, "Model dimension E of --mode mha (D = E / heads)")->check(CLI::PositiveNumber);
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
  cmd->add_option("--softcap", config->softcap, "Soft-capping at C (scores C · tanh(s / C))");
  cmd->add_flag("--sinks", config->sinks, "A random sink logit per head in every softmax denominator");
  cmd->add_option("--sink-keys", config->sink_keys, "Keys j < N seen past the window's left edge")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--block", config->block, "Tile size of --mode block-sparse")->check(CLI::PositiveNumber);
  cmd->add_option("--density", config->density, "Fraction of tiles visible in --mode block-sparse")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("--causal", *causal, "Same as --mode causal");
  cmd->add_option("--n", config->n, "Sequence length")->check(CLI::PositiveNumber);
  cmd->add_option("--nq", config->nq, "Queries, when fewer than --n: new tokens against n keys (decoding)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--d", config->d, "Head dimension")->check(CLI::PositiveNumber);
  cmd->add_option("--heads", config->heads, "Query heads")->check(CLI::PositiveNumber);
  cmd->add_option("--kv-heads", config->kv_heads, "Key/value heads (default: --heads)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", config->batch, "Batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", config->threads, "Worker threads")->check(CLI::PositiveNumber);
  cmd->add_option("--isa", *isa, "auto, avx512, avx2 or scalar")->check(CLI::IsMember({"auto", "avx512", "avx2", "scalar"}));
  cmd->add_option("--dtype", config->dtype,
                  "Element types: fp32, bf16 (q, k, v) or bf16-kv (fp32 q, bf16 k and v); the baseline runs fp32")
      ->check(CLI::IsMember({"fp32", "bf16", "bf16-kv"}));
  auto bf16_products = std::make_shared<std::string>("native");
  cmd->add_option("--bf16-products", *bf16_products,
                  "With --dtype bf16: native (vdpbf16ps where the CPU has it) or widened (fp32 products)")
      ->check(CLI::IsMember({"native", "widened"}));
  auto qk_precision = std::make_shared<std::string>("inputs");
  cmd->add_option("--qk-precision", *qk_precision,
                  "inputs (q·k in the inputs' precision) or int8 (smoothed int8 q·k by AVX512-VNNI, P·V in bf16 "
                  "unless --bf16-products widened)")
      ->check(CLI::IsMember({"inputs", "int8"}));
  cmd->add_option("--baseline", config->baseline, "onednn or none")->check(CLI::IsMember({"onednn", "none"}));
  cmd->add_option("--repeats", config->repeats, "Timed runs after a warm-up; the median is reported")->check(CLI::PositiveNumber);
  cmd->add_flag("--reuse-plan", config->reuse_plan,
                "Time runs of one AttentionPlan made before the timing (a decoding loop), alternating with attention() calls");
  auto ring = std::make_shared<RingBenchConfig>();
  auto ring_flag = std::make_shared<bool>(false);
  auto model = std::make_shared<std::vector<std::string>>();
  cmd->add_flag("--ring", *ring_flag,
                "Under mpirun: ring attention across the ranks (--threads each, default 1) against one rank alone");
  cmd->add_option("--balance", ring->balance, "How --ring deals the rows to the ranks: zigzag or contiguous")
      ->check(CLI::IsMember({"zigzag", "contiguous"}));
  cmd->add_option("--model", *model,
                  "NODES LINK_GBPS with --ring: time and memory per node of n = 1M ... 16M on NODES (e.g. 8,64,256) "
                  "nodes joined by a LINK_GBPS Gbit/s link (0: the link measured here), from the measured rates")
      ->expected(2);
  cmd->add_option("--cores-per-node", ring->cores_per_node, "Cores of a node in the --model (default 64)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", *json, "Print one JSON object instead of text");
  cmd->add_option("--output", *output, "Also write the JSON object to this file");
  on_parsed(cmd, actions, [=] {
    if (*ring_flag) return run_ring_bench(ring_config(*config, *causal, *model, *ring));
    if (!model->empty()) throw Error("--model: a model of the ring; add --ring");
    if (config->mode == "mha") {
      if (config->nq > 0) throw Error("--nq: the multi-head layer attends over its own n tokens; drop --nq with --mode mha");
      if (config->dtype == "bf16-kv") throw Error("--dtype: the multi-head layer runs fp32 or bf16; not bf16-kv");
      bench::LayerBenchConfig layer;
      layer.n = config->n, layer.e = *embed, layer.heads = config->heads, layer.kv_heads = config->kv_heads;
      layer.batch = config->batch, layer.threads = config->threads, layer.repeats = config->repeats;
      if (*causal) layer.attention.window = Window::causal();
      if (!window->empty()) layer.attention.window = {(*window)[0], (*window)[1]};
      layer.attention.isa = parse_isa(*isa);
      layer.attention.rope.pairing = parse_rope_pairing(*rope);
      layer.attention.alibi = config->alibi;
      layer.attention.qk_precision = parse_qk_precision(*qk_precision);
      layer.precision = config->dtype == "bf16" ? DType::bf16 : DType::f32;
      emit(bench::run_layer_bench(layer), *json, *output);
      return;
    }
    if (config->mode == "decode") {
      config->qk_precision = parse_qk_precision(*qk_precision);
      emit(bench::run_decode_bench(decode_config(*config, *decode, *caches, parse_isa(*isa))), *json, *output);
      return;
    }
    if (*causal) config->mode = "causal";
    if (!window->empty()) {
      config->mode = "window";
      config->window_left = (*window)[0];
      config->window_right = (*window)[1];
    }
    config->isa = parse_isa(*isa);
    config->bf16_products = parse_bf16_products(*bf16_products);
    config->qk_precision = parse_qk_precision(*qk_precision);
    config->rope.pairing = parse_rope_pairing(*rope);
    config->normalizer = parse_normalizer(*normalizer);
    emit(bench::run_attention_bench(*config), *json, *output);
  });
}

}  // namespace longattn::tools
