#include "tools/run_command.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "longattn/attention.hpp"
#include "longattn/error.hpp"
#include "tools/golden_cases.hpp"
#include "tools/npy.hpp"

namespace fs = std::filesystem;

namespace longattn::tools {
namespace {

struct RunArgs {
  std::string q, k, v, out, lse, layout = "bhnd", key_lengths, mask, blocks, isa = "auto", normalizer = "softmax";
  std::string rope = "none", relative_bias;
  double rope_base = 10000;
  bool alibi = false;
  std::optional<float> sigmoid_bias;
  std::vector<std::string> additive;  // wq.npy wk.npy w.npy
  std::vector<std::int64_t> window, block_size;
  bool causal = false;
  float scale = 0;
  int threads = 0;
};

[[noreturn]] void bad_file(const std::string& file, const std::string& what) { throw Error(file + ": " + what); }

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A float32 array of 4 dimensions, in the file's own layout.
std::vector<float> load_heads(const std::string& file, std::vector<std::int64_t>& shape) {
  const npy::Array a = npy::load(file);
  if (a.dtype != "<f4") bad_file(file, "expected dtype float32 (<f4), got " + a.dtype);
  if (a.shape.size() != 4) bad_file(file, "expected 4 dimensions, got shape " + shape_text(a.shape));
  shape = a.shape;
  return a.values<float>();
}

// [B, H, N, D] view of a file's array stored in `layout` (the file holds [B, N, H, D] for bnhd).
template <class T>
HeadsView<T> heads_view(T* data, const std::vector<std::int64_t>& s, const std::string& layout) {
  return layout == "bnhd" ? bnhd(data, s[0], s[1], s[2], s[3]) : bhnd(data, s[0], s[1], s[2], s[3]);
}

// Writes every file under a temporary name first and renames them together at the end, so a
// failure leaves no half-written output behind.
class AtomicOutputs {
 public:
  void add(const std::string& path, const std::vector<std::int64_t>& shape, const std::vector<float>& data) {
    const std::string tmp = path + ".partial";
    staged_.push_back({tmp, path});
    npy::save(tmp, "<f4", shape, data.data());
  }
  void commit() {
    for (auto& [tmp, path] : staged_) fs::rename(tmp, path);
    staged_.clear();
  }
  ~AtomicOutputs() {
    std::error_code ignored;
    for (auto& [tmp, path] : staged_) fs::remove(tmp, ignored);
  }

 private:
  std::vector<std::pair<std::string, std::string>> staged_;
};

void run(const RunArgs& args) {
  std::vector<std::int64_t> qs, ks, vs;
  const std::vector<float> q = load_heads(args.q, qs), k = load_heads(args.k, ks), v = load_heads(args.v, vs);
  const auto qv = heads_view<const float>(q.data(), qs, args.layout);
  const auto kv = heads_view<const float>(k.data(), ks, args.layout);
  const auto vv = heads_view<const float>(v.data(), vs, args.layout);
  const std::int64_t B = qv.shape[0], Hq = qv.shape[1], Nq = qv.shape[2], Dv = vv.shape[3];

  AttentionOptions options;
  if (args.scale != 0) options.scale = args.scale;
  if (args.causal) options.window = Window::causal();
  if (!args.window.empty()) options.window = {args.window[0], args.window[1]};
  options.threads = args.threads;
  options.isa = parse_isa(args.isa);
  options.normalizer = parse_normalizer(args.normalizer);
  options.sigmoid_bias = args.sigmoid_bias;

  std::vector<std::int64_t> lengths;
  if (!args.key_lengths.empty()) {
    const npy::Array a = npy::load(args.key_lengths);
    if (a.shape.size() != 1 || (a.dtype != "<i8" && a.dtype != "<i4")) {
      bad_file(args.key_lengths, "expected an int32 or int64 array [B], got " + a.dtype + " " + shape_text(a.shape));
    }
    lengths = a.values<std::int64_t>();
    options.key_lengths = lengths;
  }
  std::vector<std::uint8_t> mask;
  if (!args.mask.empty()) {
    const npy::Array a = npy::load(args.mask);
    if (a.shape.size() != 2 || (a.dtype != "|u1" && a.dtype != "|b1")) {
      bad_file(args.mask, "expected a uint8 or bool array [Nq, Nk], got " + a.dtype + " " + shape_text(a.shape));
    }
    mask = a.values<std::uint8_t>();
    options.mask = {mask.data(), {a.shape[0], a.shape[1]}, {a.shape[1], 1}};
  }
  std::vector<std::array<std::int64_t, 2>> tiles;
  if (!args.blocks.empty()) {
    const npy::Array a = npy::load(args.blocks);
    if (a.shape.size() != 2 || a.shape[1] != 2 || (a.dtype != "<i8" && a.dtype != "<i4")) {
      bad_file(args.blocks, "expected an int32 or int64 array [T, 2] of (q block, k block), got " + a.dtype + " " +
                                shape_text(a.shape));
    }
    const std::vector<std::int64_t> flat = a.values<std::int64_t>();
    for (std::size_t t = 0; t < flat.size(); t += 2) tiles.push_back({flat[t], flat[t + 1]});
    if (args.block_size.empty()) throw Error("--blocks needs --block BQ BK");
    options.block_sparse = {args.block_size[0], args.block_size[1], tiles};
  }

  std::vector<float> wq, wk, w;
  std::array<npy::Array, 3> additive_arrays;
  if (!args.additive.empty()) {
    for (int i = 0; i < 3; ++i) {
      additive_arrays[i] = npy::load(args.additive[i]);
      const npy::Array& a = additive_arrays[i];
      if (a.dtype != "<f4" || a.shape.size() != (i < 2 ? 2u : 1u)) {
        bad_file(args.additive[i], std::string("expected a float32 array ") + (i < 2 ? "[Da, D]" : "[Da]") + ", got " +
                                       a.dtype + " " + shape_text(a.shape));
      }
    }
    wq = additive_arrays[0].values<float>(), wk = additive_arrays[1].values<float>(), w = additive_arrays[2].values<float>();
    const auto& sq = additive_arrays[0].shape;
    const auto& sk = additive_arrays[1].shape;
    options.additive = {{wq.data(), {sq[0], sq[1]}, {sq[1], 1}}, {wk.data(), {sk[0], sk[1]}, {sk[1], 1}}, w};
  }

  options.rope = {parse_rope_pairing(args.rope), args.rope_base};
  options.alibi = args.alibi;
  std::vector<float> relative;
  if (!args.relative_bias.empty()) {
    const npy::Array a = npy::load(args.relative_bias);
    if (a.dtype != "<f4" || a.shape.size() != 2) {
      bad_file(args.relative_bias, "expected a float32 array [Hq, 2K+1], got " + a.dtype + " " + shape_text(a.shape));
    }
    relative = a.values<float>();
    options.relative_bias = {relative.data(), {a.shape[0], a.shape[1]}, {a.shape[1], 1}};
  }

  // Outputs in the inputs' layout: [B, Hq, Nq, Dv] for bhnd, [B, Nq, Hq, Dv] for bnhd.
  const std::vector<std::int64_t> out_shape =
      args.layout == "bnhd" ? std::vector<std::int64_t>{B, Nq, Hq, Dv} : std::vector<std::int64_t>{B, Hq, Nq, Dv};
  std::vector<float> out(static_cast<std::size_t>(B * Hq * Nq * Dv)), lse(static_cast<std::size_t>(B * Hq * Nq));
  const AttentionStats stats = attention(qv, kv, vv, heads_view<float>(out.data(), out_shape, args.layout), options,
                                         args.lse.empty() ? TensorView<float, 3>{} : bhn(lse.data(), B, Hq, Nq));
  AtomicOutputs outputs;
  outputs.add(args.out, out_shape, out);
  if (!args.lse.empty()) outputs.add(args.lse, {B, Hq, Nq}, lse);
  outputs.commit();
  std::fprintf(stderr, "longattn run: %s: [%lld, %lld, %lld, %lld], %.3g GFLOP on %s\n", args.out.c_str(),
               (long long)out_shape[0], (long long)out_shape[1], (long long)out_shape[2], (long long)out_shape[3],
               stats.flops * 1e-9, to_string(stats.isa).c_str());
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "Attention on .npy files: q, k, v in, out (and lse) out");
  cmd->add_option("--q", args->q, "Queries: float32 [B, Hq, Nq, D] (or [B, Nq, Hq, D] with --layout bnhd)")->required();
  cmd->add_option("--k", args->k, "Keys: float32 [B, Hkv, Nk, D]")->required();
  cmd->add_option("--v", args->v, "Values: float32 [B, Hkv, Nk, Dv]")->required();
  cmd->add_option("--out", args->out, "Output .npy: float32 [B, Hq, Nq, Dv], in the inputs' layout")->required();
  cmd->add_option("--lse", args->lse, "Also write the log-sum-exp of every query: float32 [B, Hq, Nq]");
  cmd->add_option("--layout", args->layout, "Memory layout of every array")->check(CLI::IsMember({"bhnd", "bnhd"}));
  cmd->add_flag("--causal", args->causal, "Causal mask (window -1 0), queries aligned bottom-right");
  cmd->add_option("--window", args->window, "LEFT RIGHT: keys pos-LEFT .. pos+RIGHT visible, -1 = unbounded")
      ->expected(2)->excludes("--causal");
  cmd->add_option("--key-lengths", args->key_lengths, "int64 [B]: keys j >= length[b] hidden (padding)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--mask", args->mask, "uint8/bool [Nq, Nk]: nonzero = visible (e.g. a graph's adjacency)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--blocks", args->blocks, "int64 [T, 2]: visible (q block, k block) tiles of a block-sparse layout")
      ->check(CLI::ExistingFile);
  cmd->add_option("--block", args->block_size, "BQ BK: tile size of --blocks")->expected(2);
  cmd->add_option("--scale", args->scale, "Score scale (default 1/sqrt(D))");
  cmd->add_option("--normalizer", args->normalizer, "softmax, sigmoid, relu or linear")
      ->check(CLI::IsMember({"softmax", "sigmoid", "relu", "linear"}));
  cmd->add_option("--sigmoid-bias", args->sigmoid_bias, "b of sigmoid(s + b) (default -log(Nk))");
  cmd->add_option("--additive", args->additive, "WQ WK W: .npy files [Da, D], [Da, D], [Da]: scores wᵀ tanh(Wq q + Wk k)")
      ->expected(3)->check(CLI::ExistingFile);
  cmd->add_option("--rope", args->rope, "RoPE pairing of q and k features: none, half (NeoX, LLaMA) or interleaved (GPT-J)")
      ->check(CLI::IsMember({"none", "half", "interleaved"}));
  cmd->add_option("--rope-base", args->rope_base, "RoPE base: pair i turns by pos · base^(-2i/D) (default 10000)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--alibi", args->alibi, "ALiBi: add -m_h |pos_i - j| to the scores, the paper's slopes for Hq heads");
  cmd->add_option("--relative-bias", args->relative_bias,
                  "float32 [Hq, 2K+1]: add table[h][clip(j - pos_i, -K, K) + K] to the scores")
      ->check(CLI::ExistingFile);
  cmd->add_option("--threads", args->threads, "Worker threads (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--isa", args->isa, "auto, avx512, avx2 or scalar")->check(CLI::IsMember({"auto", "avx512", "avx2", "scalar"}));
  cmd->callback([args] { run(*args); });
}

void add_golden_command(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto isa = std::make_shared<std::string>("auto");
  auto threads = std::make_shared<int>(0);
  CLI::App* cmd = app.add_subcommand("golden", "Run a folder of golden cases and report pass/fail per case");
  cmd->add_option("dir", *dir, "Folder of case folders (each with case.json and .npy files)")
      ->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--isa", *isa, "auto, avx512, avx2 or scalar")->check(CLI::IsMember({"auto", "avx512", "avx2", "scalar"}));
  cmd->add_option("--threads", *threads, "Worker threads (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->callback([=] {
    const std::vector<fs::path> cases = golden::case_folders(*dir);
    int passed = 0, failed = 0, skipped = 0;
    for (const fs::path& c : cases) {
      using Status = golden::CaseResult::Status;
      const golden::CaseResult r = golden::run_case(c, parse_isa(*isa), *threads);
      const char* word = r.status == Status::passed ? "pass" : r.status == Status::failed ? "FAIL" : "skip";
      (r.status == Status::passed ? passed : r.status == Status::failed ? failed : skipped)++;
      std::printf("%-4s %-32s %s\n", word, c.filename().c_str(), r.detail.c_str());
    }
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    if (failed > 0) throw CLI::RuntimeError(1);
  });
}

}  // namespace longattn::tools
