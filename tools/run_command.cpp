#include "tools/run_command.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bench/measure.hpp"
#include "longattn/attention.hpp"
#include "longattn/bf16.hpp"
#include "longattn/error.hpp"
#include "longattn/multi_head.hpp"
#include "tools/golden_cases.hpp"
#include "tools/heads_file.hpp"
#include "tools/npy.hpp"
#include "tools/ring_run.hpp"

namespace fs = std::filesystem;

namespace longattn::tools {
namespace {

struct RunArgs {
  std::string q, k, v, out, lse, layout = "bhnd", key_lengths, mask, blocks, isa = "auto", normalizer = "softmax";
  std::string rope = "none", relative_bias;
  std::optional<float> softcap;
  std::string sinks, cu_seqlens_q, cu_seqlens_k;  // files: float32 [Hq], int64 [S + 1] twice
  std::int64_t sink_keys = 0;
  std::string dtype = "fp32", bf16_products = "native", qk_precision = "inputs";  // what q, k, v are given to attention() as
  // The multi-head layer: x and PyTorch-layout weights instead of q, k, v.
  std::string x, wq, wk, wv, wo, bq, bk, bv, bo, in_proj_weight, in_proj_bias, positions = "none", position_table;
  std::int64_t heads = 0, kv_heads = 0, head_dim = 0;
  double rope_base = 10000;
  bool alibi = false;
  std::optional<float> sigmoid_bias;
  std::vector<std::string> additive;  // wq.npy wk.npy w.npy
  std::vector<std::int64_t> window, block_size;
  bool causal = false;
  float scale = 0;
  int threads = 0;
  bool ring = false;                 // across the ranks of mpirun (ring attention)
  std::string balance = "zigzag";    // how --ring deals the rows to the ranks
};

[[noreturn]] void bad_file(const std::string& file, const std::string& what) { throw Error(file + ": " + what); }

// A float32 array of 4 dimensions, in the file's own layout.
std::vector<float> load_heads(const std::string& file, std::vector<std::int64_t>& shape) {
  return heads_values(npy::load(file), file, shape);
}

// The options of the contract every run shares, from the flags.
AttentionOptions kernel_options(const RunArgs& args) {
  AttentionOptions options;
  if (args.scale != 0) options.scale = args.scale;
  if (args.causal) options.window = Window::causal();
  if (!args.window.empty()) options.window = {args.window[0], args.window[1]};
  options.threads = args.threads;
  options.isa = parse_isa(args.isa);
  options.normalizer = parse_normalizer(args.normalizer);
  options.sigmoid_bias = args.sigmoid_bias;
  options.rope = {parse_rope_pairing(args.rope), args.rope_base};
  options.alibi = args.alibi;
  options.softcap = args.softcap;
  options.sink_keys = args.sink_keys;
  return options;
}

// A float32 array of `rank` dimensions.
npy::Array load_float(const std::string& file, std::size_t rank, const char* expected) {
  npy::Array a = npy::load(file);
  if (a.dtype != "<f4" || a.shape.size() != rank) {
    bad_file(file, std::string("expected a float32 array ") + expected + ", got " + a.dtype + " " + shape_text(a.shape));
  }
  return a;
}

TensorView<const float, 2> matrix_view(const npy::Array& a, const std::vector<float>& data) {
  if (a.shape.empty()) return {};
  return {data.data(), {a.shape[0], a.shape[1]}, {a.shape[1], 1}};
}

// --relative-bias: the table into `data`, viewed by options.relative_bias.
void load_relative_bias(const RunArgs& args, AttentionOptions& options, std::vector<float>& data) {
  if (args.relative_bias.empty()) return;
  const npy::Array a = load_float(args.relative_bias, 2, "[Hq, 2K+1]");
  data = a.values<float>();
  options.relative_bias = matrix_view(a, data);
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

// The multi-head layer: y [B, N, E] from x and the weights.
void run_layer(const RunArgs& args) {
  if (!args.q.empty() || !args.k.empty() || !args.v.empty()) throw Error("--x runs the layer: give it no --q, --k, --v");
  if (args.heads < 1) throw Error("--x needs --heads (query heads of the layer)");
  if (args.layout != "bhnd" || !args.key_lengths.empty() || !args.mask.empty() || !args.blocks.empty() ||
      !args.additive.empty() || !args.lse.empty() || !args.sinks.empty() || !args.cu_seqlens_q.empty() ||
      !args.cu_seqlens_k.empty()) {
    throw Error("--x runs the layer on [B, N, E]: --layout, --key-lengths, --mask, --blocks, --additive, --lse, "
                "--sinks and --cu-seqlens-q/k apply to q, k, v only");
  }
  const npy::Array xa = load_float(args.x, 3, "[B, N, E]");
  const std::vector<float> x = xa.values<float>();
  const std::int64_t B = xa.shape[0], N = xa.shape[1], E = xa.shape[2];

  struct Matrix {
    npy::Array array;
    std::vector<float> data;
  };
  // Files not named stay empty: optional in the layer, or missing (then reported below).
  auto matrix = [](const std::string& file, const char* expected) {
    Matrix m;
    if (file.empty()) return m;
    m.array = load_float(file, 2, expected);
    m.data = m.array.values<float>();
    return m;
  };
  auto vector = [](const std::string& file, const char* expected) {
    return file.empty() ? std::vector<float>{} : load_float(file, 1, expected).values<float>();
  };
  const Matrix wq = matrix(args.wq, "[Hq·D, E]"), wk = matrix(args.wk, "[Hkv·D, E]"), wv = matrix(args.wv, "[Hkv·D, E]"),
               wo = matrix(args.wo, "[E, Hq·D]"), packed = matrix(args.in_proj_weight, "[3E, E]"),
               table = matrix(args.position_table, "[max_len, E]");
  const std::vector<float> bq = vector(args.bq, "[Hq·D]"), bk = vector(args.bk, "[Hkv·D]"), bv = vector(args.bv, "[Hkv·D]"),
                           bo = vector(args.bo, "[E]"), packed_bias = vector(args.in_proj_bias, "[3E]");
  if (args.wo.empty()) throw Error("--x needs --wo (the output projection [E, Hq·D])");
  if (args.in_proj_weight.empty() && (args.wq.empty() || args.wk.empty() || args.wv.empty())) {
    throw Error("--x needs --wq, --wk and --wv, or --in-proj-weight");
  }
  MultiHeadWeights weights;
  weights.wq = matrix_view(wq.array, wq.data), weights.wk = matrix_view(wk.array, wk.data);
  weights.wv = matrix_view(wv.array, wv.data), weights.wo = matrix_view(wo.array, wo.data);
  weights.in_proj_weight = matrix_view(packed.array, packed.data);
  weights.position_table = matrix_view(table.array, table.data);
  weights.bq = bq, weights.bk = bk, weights.bv = bv, weights.bo = bo, weights.in_proj_bias = packed_bias;

  MultiHeadConfig config;
  config.embed_dim = E;
  config.heads = args.heads;
  config.kv_heads = args.kv_heads;
  // D from wq's rows when they split evenly into heads; otherwise the layer's own rule (E / Hq)
  // and its error naming what disagrees.
  const std::int64_t wq_rows = wq.array.shape.empty() ? 0 : wq.array.shape[0];
  config.head_dim = args.head_dim > 0 ? args.head_dim : wq_rows % args.heads == 0 ? wq_rows / args.heads : 0;
  config.positions = args.positions == "sinusoidal" ? AbsolutePositions::sinusoidal
                     : args.positions == "learned"  ? AbsolutePositions::learned
                                                    : AbsolutePositions::none;
  config.attention = kernel_options(args);
  std::vector<float> relative;
  load_relative_bias(args, config.attention, relative);

  MultiHeadSelfAttention layer(config, weights);
  std::vector<float> y(static_cast<std::size_t>(B * N * E));
  const MultiHeadStats stats = layer.forward({x.data(), {B, N, E}, {N * E, E, 1}}, {y.data(), {B, N, E}, {N * E, E, 1}});
  AtomicOutputs outputs;
  outputs.add(args.out, {B, N, E}, y);
  outputs.commit();
  std::fprintf(stderr, "longattn run: %s: [%lld, %lld, %lld], projections %.3g s, attention %.3g s, output %.3g s on %s\n",
               args.out.c_str(), (long long)B, (long long)N, (long long)E, stats.projection_seconds,
               stats.attention_seconds, stats.output_seconds, to_string(stats.attention.isa).c_str());
}

// The arrays behind the per-call options: key lengths, mask, block-sparse tiles, additive
// weights and the relative table, loaded from their files and viewed by `options`.
struct CallInputs {
  std::vector<std::int64_t> lengths;
  std::vector<std::uint8_t> mask;
  std::vector<std::array<std::int64_t, 2>> tiles;
  std::array<npy::Array, 3> additive_arrays;
  std::vector<float> wq, wk, w, relative, sinks;
  std::vector<std::int64_t> cu_seqlens_q, cu_seqlens_k;
};

// An int32 or int64 array [n] from `file`.
std::vector<std::int64_t> load_integers(const std::string& file, const char* expected) {
  const npy::Array a = npy::load(file);
  if (a.shape.size() != 1 || (a.dtype != "<i8" && a.dtype != "<i4")) {
    bad_file(file, std::string("expected an int32 or int64 array ") + expected + ", got " + a.dtype + " " +
                       shape_text(a.shape));
  }
  return a.values<std::int64_t>();
}

void load_call_inputs(const RunArgs& args, AttentionOptions& options, CallInputs& in) {
  if (!args.key_lengths.empty()) {
    in.lengths = load_integers(args.key_lengths, "[B]");
    options.key_lengths = in.lengths;
  }
  if (!args.cu_seqlens_q.empty()) in.cu_seqlens_q = load_integers(args.cu_seqlens_q, "[S + 1]");
  if (!args.cu_seqlens_k.empty()) in.cu_seqlens_k = load_integers(args.cu_seqlens_k, "[S + 1]");
  options.cu_seqlens_q = in.cu_seqlens_q, options.cu_seqlens_k = in.cu_seqlens_k;
  if (!args.sinks.empty()) {
    in.sinks = load_float(args.sinks, 1, "[Hq]").values<float>();
    options.sinks = in.sinks;
  }
  if (!args.mask.empty()) {
    const npy::Array a = npy::load(args.mask);
    if (a.shape.size() != 2 || (a.dtype != "|u1" && a.dtype != "|b1")) {
      bad_file(args.mask, "expected a uint8 or bool array [Nq, Nk], got " + a.dtype + " " + shape_text(a.shape));
    }
    in.mask = a.values<std::uint8_t>();
    options.mask = {in.mask.data(), {a.shape[0], a.shape[1]}, {a.shape[1], 1}};
  }
  if (!args.blocks.empty()) {
    const npy::Array a = npy::load(args.blocks);
    if (a.shape.size() != 2 || a.shape[1] != 2 || (a.dtype != "<i8" && a.dtype != "<i4")) {
      bad_file(args.blocks, "expected an int32 or int64 array [T, 2] of (q block, k block), got " + a.dtype + " " +
                                shape_text(a.shape));
    }
    const std::vector<std::int64_t> flat = a.values<std::int64_t>();
    for (std::size_t t = 0; t < flat.size(); t += 2) in.tiles.push_back({flat[t], flat[t + 1]});
    if (args.block_size.empty()) throw Error("--blocks needs --block BQ BK");
    options.block_sparse = {args.block_size[0], args.block_size[1], in.tiles};
  }
  if (!args.additive.empty()) {
    auto& arrays = in.additive_arrays;
    for (int i = 0; i < 3; ++i) arrays[i] = load_float(args.additive[i], i < 2 ? 2 : 1, i < 2 ? "[Da, D]" : "[Da]");
    in.wq = arrays[0].values<float>(), in.wk = arrays[1].values<float>(), in.w = arrays[2].values<float>();
    options.additive = {matrix_view(arrays[0], in.wq), matrix_view(arrays[1], in.wk), in.w};
  }
  load_relative_bias(args, options, in.relative);
  if (args.dtype == "bf16") options.bf16_products = parse_bf16_products(args.bf16_products);
  options.qk_precision = parse_qk_precision(args.qk_precision);
}

// out (shape: [B, Hq, Nq, Dv] in the inputs' layout) and lse [B, Hq, Nq], both or neither.
void write_outputs(const RunArgs& args, const std::vector<std::int64_t>& shape, const std::vector<float>& out,
                   const std::vector<float>& lse, const AttentionStats& stats) {
  AtomicOutputs outputs;
  outputs.add(args.out, shape, out);
  if (!args.lse.empty()) {
    const bool bnhd_layout = args.layout == "bnhd";
    outputs.add(args.lse, {shape[0], shape[bnhd_layout ? 2 : 1], shape[bnhd_layout ? 1 : 2]}, lse);
  }
  outputs.commit();
  std::fprintf(stderr, "longattn run: %s: [%lld, %lld, %lld, %lld], %.3g GFLOP on %s%s\n", args.out.c_str(),
               (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3], stats.flops * 1e-9,
               to_string(stats.isa).c_str(),
               (std::string(args.dtype != "bf16" ? "" : stats.bf16_products ? ", bf16 products" : ", bf16 widened to fp32") +
                (stats.qk_int8 ? ", int8 q·k" : ""))
                   .c_str());
}

// Outputs [B, Hq, Nq, Dv] in the inputs' layout: [B, Nq, Hq, Dv] for bnhd.
std::vector<std::int64_t> output_shape(const RunArgs& args, std::int64_t B, std::int64_t Hq, std::int64_t Nq,
                                       std::int64_t Dv) {
  return args.layout == "bnhd" ? std::vector<std::int64_t>{B, Nq, Hq, Dv} : std::vector<std::int64_t>{B, Hq, Nq, Dv};
}

// --ring: each rank reads its rows, rank 0 writes.
void run_ring(const RunArgs& args, const AttentionOptions& options) {
  const RingRun ring = run_on_ring({.q = args.q, .k = args.k, .v = args.v, .layout = args.layout,
                                    .balance = args.balance, .bf16 = args.dtype == "bf16", .with_lse = !args.lse.empty()},
                                   options);
  if (!ring.writer) return;
  write_outputs(args, output_shape(args, ring.batch, ring.q_heads, ring.n, ring.dv), ring.out, ring.lse, ring.stats);
}

void run_kernel(const RunArgs& args) {
  if (args.q.empty() || args.k.empty() || args.v.empty()) throw Error("run needs --q, --k and --v (or --x and weights)");
  AttentionOptions options = kernel_options(args);
  CallInputs inputs;
  load_call_inputs(args, options, inputs);
  if (args.ring) return run_ring(args, options);

  std::vector<std::int64_t> qs, ks, vs;
  const std::vector<float> q = load_heads(args.q, qs), k = load_heads(args.k, ks), v = load_heads(args.v, vs);
  const auto qv = heads_view<const float>(q.data(), qs, args.layout);
  const auto kv = heads_view<const float>(k.data(), ks, args.layout);
  const auto vv = heads_view<const float>(v.data(), vs, args.layout);
  const std::int64_t B = qv.shape[0], Hq = qv.shape[1], Nq = qv.shape[2], Dv = vv.shape[3];
  const std::vector<std::int64_t> out_shape = output_shape(args, B, Hq, Nq, Dv);
  std::vector<float> out(static_cast<std::size_t>(B * Hq * Nq * Dv)), lse(static_cast<std::size_t>(B * Hq * Nq));
  const auto out_view = heads_view<float>(out.data(), out_shape, args.layout);
  const auto lse_view = args.lse.empty() ? TensorView<float, 3>{} : bhn(lse.data(), B, Hq, Nq);
  AttentionStats stats;
  if (args.dtype == "bf16") {  // each value rounded to the nearest bf16, in the same layout
    const bench::Bf16Tensor qh = bench::rounded_to_bf16(q), kh = bench::rounded_to_bf16(k),
                            vh = bench::rounded_to_bf16(v);
    stats = attention(heads_view<const bf16>(qh.data(), qs, args.layout), heads_view<const bf16>(kh.data(), ks, args.layout),
                      heads_view<const bf16>(vh.data(), vs, args.layout), out_view, options, lse_view);
  } else {
    stats = attention(qv, kv, vv, out_view, options, lse_view);
  }
  write_outputs(args, out_shape, out, lse, stats);
}

}  // namespace

void add_run_command(CLI::App& app, Actions actions) {
  auto args = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Attention on .npy files: q, k, v in, out (and lse) out; or the multi-head layer: x and weights in, y out");
  cmd->add_option("--q", args->q, "Queries: float32 [B, Hq, Nq, D] (or [B, Nq, Hq, D] with --layout bnhd)");
  cmd->add_option("--k", args->k, "Keys: float32 [B, Hkv, Nk, D]");
  cmd->add_option("--v", args->v, "Values: float32 [B, Hkv, Nk, Dv]");
  cmd->add_option("--out", args->out, "Output .npy: float32 [B, Hq, Nq, Dv] in the inputs' layout; y [B, N, E] for --x")
      ->required();
  auto* layer = "Multi-head layer (PyTorch nn.Linear layout [out, in])";
  cmd->add_option("--x", args->x, "Layer input: float32 [B, N, E]; runs the multi-head layer")->group(layer)->check(CLI::ExistingFile);
  for (auto [flag, target, help] : {std::tuple{"--wq", &args->wq, "float32 [Hq·D, E]"}, {"--wk", &args->wk, "float32 [Hkv·D, E]"},
                                    {"--wv", &args->wv, "float32 [Hkv·D, E]"}, {"--wo", &args->wo, "float32 [E, Hq·D]"},
                                    {"--bq", &args->bq, "float32 [Hq·D] (optional)"}, {"--bk", &args->bk, "float32 [Hkv·D] (optional)"},
                                    {"--bv", &args->bv, "float32 [Hkv·D] (optional)"}, {"--bo", &args->bo, "float32 [E] (optional)"},
                                    {"--in-proj-weight", &args->in_proj_weight, "float32 [3E, E]: nn.MultiheadAttention's packed q, k, v"},
                                    {"--in-proj-bias", &args->in_proj_bias, "float32 [3E] (optional)"},
                                    {"--position-table", &args->position_table, "float32 [max_len, E] for --positions learned"}}) {
    cmd->add_option(flag, *target, help)->group(layer)->check(CLI::ExistingFile);
  }
  cmd->add_option("--heads", args->heads, "Query heads Hq")->group(layer)->check(CLI::PositiveNumber);
  cmd->add_option("--kv-heads", args->kv_heads, "Key/value heads Hkv (default Hq)")->group(layer)->check(CLI::PositiveNumber);
  cmd->add_option("--head-dim", args->head_dim, "D (default: rows of --wq / Hq, or E / Hq)")->group(layer)->check(CLI::PositiveNumber);
  cmd->add_option("--positions", args->positions, "Absolute positions added to x: none, sinusoidal or learned")
      ->group(layer)->check(CLI::IsMember({"none", "sinusoidal", "learned"}));
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
  cmd->add_option("--softcap", args->softcap, "C: scores become C · tanh(s / C) before biases and masks (Gemma 2)");
  cmd->add_option("--sinks", args->sinks, "float32 [Hq]: a sink logit per head in every softmax denominator (gpt-oss)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--sink-keys", args->sink_keys, "N: keys j < N visible past the window's left edge (StreamingLLM)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--cu-seqlens-q", args->cu_seqlens_q, "int64 [S + 1]: packed sequences' query offsets (batch 1)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--cu-seqlens-k", args->cu_seqlens_k, "int64 [S + 1]: packed sequences' key offsets")
      ->check(CLI::ExistingFile);
  cmd->add_option("--threads", args->threads, "Worker threads (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--isa", args->isa, "auto, avx512, avx2 or scalar")->check(CLI::IsMember({"auto", "avx512", "avx2", "scalar"}));
  cmd->add_flag("--ring", args->ring,
                "Under mpirun: ring attention across the ranks (each computes its rows; rank 0 writes the files)");
  cmd->add_option("--balance", args->balance, "How --ring deals the rows to the ranks: zigzag or contiguous")
      ->check(CLI::IsMember({"zigzag", "contiguous"}));
  cmd->add_option("--dtype", args->dtype,
                  "fp32, or bf16: q, k, v rounded to bf16 and run as bf16 (the output stays float32)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  cmd->add_option("--bf16-products", args->bf16_products,
                  "With --dtype bf16: native (vdpbf16ps where the CPU has it) or widened (fp32 products)")
      ->check(CLI::IsMember({"native", "widened"}));
  cmd->add_option("--qk-precision", args->qk_precision,
                  "inputs, or int8: q·k on smoothed int8 by AVX512-VNNI (README \"int8 scores\")")
      ->check(CLI::IsMember({"inputs", "int8"}));
  on_parsed(cmd, actions, [args] {
    if (!args->x.empty() && args->dtype != "fp32") throw Error("--dtype: the multi-head layer runs fp32; drop --dtype with --x");
    args->x.empty() ? run_kernel(*args) : run_layer(*args);
  });
}

void add_golden_command(CLI::App& app, Actions actions) {
  auto dir = std::make_shared<std::string>(golden::golden_root(LONGATTN_DEFAULT_GOLDEN_DIR).string());
  auto isa = std::make_shared<std::string>("auto");
  auto threads = std::make_shared<int>(0);
  auto dtype = std::make_shared<std::string>("fp32");
  CLI::App* cmd = app.add_subcommand("golden", "Run a folder of golden cases and report pass/fail per case");
  cmd->add_option("dir", *dir, "Folder of case folders (each with case.json and .npy files)")
      ->capture_default_str()->check(CLI::ExistingDirectory);
  cmd->add_option("--isa", *isa, "auto, avx512, avx2 or scalar")->check(CLI::IsMember({"auto", "avx512", "avx2", "scalar"}));
  cmd->add_option("--threads", *threads, "Worker threads (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--dtype", *dtype, "q, k, v as given (fp32) or rounded to bf16 (attention cases, bf16 tolerance)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  on_parsed(cmd, actions, [=] {
    const std::vector<fs::path> cases = golden::case_folders(*dir);
    int passed = 0, failed = 0, skipped = 0;
    for (const fs::path& c : cases) {
      using Status = golden::CaseResult::Status;
      const golden::CaseResult r = golden::run_case(c, parse_isa(*isa), *threads,
                                                    *dtype == "bf16" ? golden::Inputs::bf16 : golden::Inputs::fp32);
      const char* word = r.status == Status::passed ? "pass" : r.status == Status::failed ? "FAIL" : "skip";
      (r.status == Status::passed ? passed : r.status == Status::failed ? failed : skipped)++;
      std::printf("%-4s %-32s %s\n", word, c.filename().c_str(), r.detail.c_str());
    }
    std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    if (failed > 0) throw CLI::RuntimeError(1);
  });
}

}  // namespace longattn::tools
