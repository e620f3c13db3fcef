#include "tools/golden_cases.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <vector>

#include "longattn/attention.hpp"
#include "longattn/error.hpp"
#include "longattn/multi_head.hpp"
#include "longattn/positional.hpp"
#include "tools/npy.hpp"

namespace fs = std::filesystem;

namespace longattn::golden {
namespace {

nlohmann::json read_case(const fs::path& dir) {
  std::ifstream in(dir / "case.json");
  if (!in) throw Error((dir / "case.json").string() + ": cannot open");
  nlohmann::json c = nlohmann::json::parse(in, nullptr, false);
  if (c.is_discarded()) throw Error((dir / "case.json").string() + ": not valid JSON");
  return c;
}

// The first key of case.json outside `known`, as "key NAME", or "": a key the runner does not
// know would otherwise be run as if it were absent, as something else than the case asks.
std::string unknown_key(const nlohmann::json& c, const std::set<std::string>& known) {
  for (const auto& [key, value] : c.items()) {
    if (!known.count(key)) return "key " + key;
  }
  return "";
}

// The first file of the case outside `known`, or "".
std::string unknown_file(const nlohmann::json& c, const std::set<std::string>& known) {
  for (const auto& f : c.value("files", nlohmann::json::array())) {
    if (!known.count(f.get<std::string>())) return f.get<std::string>();
  }
  return "";
}

std::string unsupported_feature_of(const nlohmann::json& c) {
  const std::string op = c.value("op", "");
  if (op == "sinusoidal") return unknown_key(c, {"op", "files", "n", "d"});
  if (op == "mha") {
    static const std::set<std::string> files = {"x.npy",  "wq.npy", "wk.npy", "wv.npy", "wo.npy", "bq.npy",
                                                "bk.npy", "bv.npy", "bo.npy", "pe_table.npy", "expected_out.npy"};
    static const std::set<std::string> keys = {"op",     "files",  "layout",       "heads",     "kv_heads",
                                               "positional", "window", "rope_pairing", "rope_base", "alibi"};
    if (std::string file = unknown_file(c, files); !file.empty()) return file;
    if (std::string key = unknown_key(c, keys); !key.empty()) return key;
    return c.value("layout", "BNE") == "BNE" ? "" : "layout " + c["layout"].get<std::string>();
  }
  if (op != "attention") return "op " + c.value("op", std::string("?"));
  static const std::set<std::string> files = {"q.npy",           "k.npy",           "v.npy",
                                              "expected_out.npy", "expected_lse.npy", "key_lengths.npy",
                                              "mask.npy", "additive_wq.npy", "additive_wk.npy", "additive_w.npy",
                                              "rel_table.npy", "sinks.npy", "cu_seqlens_q.npy", "cu_seqlens_k.npy"};
  static const std::set<std::string> keys = {"op",        "files",        "layout",    "window",    "scale",
                                             "normalizer", "sigmoid_bias", "alibi",     "rope_pairing",
                                             "rope_base",  "softcap",      "sink_keys"};
  if (std::string file = unknown_file(c, files); !file.empty()) return file;
  if (std::string key = unknown_key(c, keys); !key.empty()) return key;
  if (c.value("layout", "BHND") != "BHND") return "layout " + c["layout"].get<std::string>();
  return "";
}

const std::vector<std::int64_t>& shape4(const npy::Array& a, const fs::path& file) {
  if (a.shape.size() != 4 || a.dtype != "<f4") {
    throw Error(file.string() + ": expected a float32 (<f4) array of 4 dimensions [B, H, N, D]");
  }
  return a.shape;
}

// max |a − e| over finite expectations; -inf expectations must be met exactly.
double max_error(const std::vector<float>& a, const std::vector<double>& e, bool& exact_inf) {
  double worst = 0;
  for (std::size_t i = 0; i < e.size(); ++i) {
    if (std::isinf(e[i])) {
      exact_inf = exact_inf && a[i] == e[i];
    } else if (!std::isfinite(a[i])) {
      worst = INFINITY;
    } else {
      worst = std::max(worst, std::abs(a[i] - e[i]));
    }
  }
  return worst;
}

}  // namespace

double tolerance(double max_abs_expected, double max_abs_score, double max_abs_value, double rel, double score_rel) {
  return rel * std::max(1.0, max_abs_expected) + score_rel * max_abs_score * max_abs_value;
}

fs::path golden_root(const fs::path& fallback) {
  const char* env = std::getenv("LONGATTN_GOLDEN_DIR");
  return env != nullptr && *env != '\0' ? fs::path(env) : fallback;
}

std::vector<fs::path> case_folders(const fs::path& root) {
  std::vector<fs::path> cases;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (fs::exists(entry.path() / "case.json")) cases.push_back(entry.path());
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

std::string unsupported_feature(const fs::path& dir) { return unsupported_feature_of(read_case(dir)); }

namespace {

// Compares `actual` with the case's expected_out.npy under the README's first term.
CaseResult compare_output(const fs::path& dir, const std::vector<float>& actual) {
  const std::vector<double> expected = npy::load(dir / "expected_out.npy").values<double>();
  if (actual.size() != expected.size()) throw Error((dir / "expected_out.npy").string() + ": size disagrees with the inputs");
  double max_expected = 0;
  for (double x : expected) max_expected = std::max(max_expected, std::abs(x));
  CaseResult result;
  bool exact_inf = true;
  result.bound = tolerance(max_expected, 0, 0);
  result.max_error = max_error(actual, expected, exact_inf);
  const bool ok = exact_inf && result.max_error <= result.bound;
  result.status = ok ? CaseResult::Status::passed : CaseResult::Status::failed;
  result.detail = "max error " + std::to_string(result.max_error) + (ok ? " <= " : " > ") + std::to_string(result.bound);
  return result;
}

// op sinusoidal: the table of n positions and d features.
CaseResult run_sinusoidal_case(const fs::path& dir, const nlohmann::json& c) {
  return compare_output(dir, sinusoidal_table(c.at("n").get<std::int64_t>(), c.at("d").get<std::int64_t>()));
}

// A float32 matrix file as a [rows, cols] view of `data`.
TensorView<const float, 2> matrix(const fs::path& file, std::vector<float>& data) {
  const npy::Array a = npy::load(file);
  if (a.dtype != "<f4" || a.shape.size() != 2) throw Error(file.string() + ": expected a float32 array of 2 dimensions");
  data = a.values<float>();
  return {data.data(), {a.shape[0], a.shape[1]}, {a.shape[1], 1}};
}

std::vector<float> vector_or_empty(const fs::path& file) {
  return fs::exists(file) ? npy::load(file).values<float>() : std::vector<float>{};
}

// op mha: the multi-head layer on x [B, N, E] with PyTorch-layout weights.
CaseResult run_mha_case(const fs::path& dir, const nlohmann::json& c, Isa isa, int threads) {
  const npy::Array xa = npy::load(dir / "x.npy");
  if (xa.dtype != "<f4" || xa.shape.size() != 3) throw Error((dir / "x.npy").string() + ": expected float32 [B, N, E]");
  const std::vector<float> x = xa.values<float>();
  const std::int64_t B = xa.shape[0], N = xa.shape[1], E = xa.shape[2];
  std::vector<float> wq, wk, wv, wo, table;
  MultiHeadWeights weights;
  weights.wq = matrix(dir / "wq.npy", wq);
  weights.wk = matrix(dir / "wk.npy", wk);
  weights.wv = matrix(dir / "wv.npy", wv);
  weights.wo = matrix(dir / "wo.npy", wo);
  const std::vector<float> bq = vector_or_empty(dir / "bq.npy"), bk = vector_or_empty(dir / "bk.npy"),
                           bv = vector_or_empty(dir / "bv.npy"), bo = vector_or_empty(dir / "bo.npy");
  weights.bq = bq, weights.bk = bk, weights.bv = bv, weights.bo = bo;

  MultiHeadConfig config;
  config.embed_dim = E;
  config.heads = c.at("heads").get<std::int64_t>();
  config.kv_heads = c.value("kv_heads", std::int64_t{0});
  config.head_dim = weights.wq.shape[0] / config.heads;
  const std::string positional = c.value("positional", "none");
  if (positional == "sinusoidal") {
    config.positions = AbsolutePositions::sinusoidal;
  } else if (positional == "learned") {
    config.positions = AbsolutePositions::learned;
    weights.position_table = matrix(dir / "pe_table.npy", table);
  } else if (positional != "none") {
    throw Error((dir / "case.json").string() + ": unknown positional \"" + positional + "\"");
  }
  AttentionOptions& options = config.attention;
  if (c.contains("window")) options.window = {c["window"][0].get<std::int64_t>(), c["window"][1].get<std::int64_t>()};
  if (c.contains("rope_pairing")) {
    options.rope = {parse_rope_pairing(c["rope_pairing"].get<std::string>()), c.value("rope_base", 10000.0)};
  }
  options.alibi = c.value("alibi", false);
  options.isa = isa;
  options.threads = threads;

  MultiHeadSelfAttention layer(config, weights);
  std::vector<float> y(static_cast<std::size_t>(B * N * E), NAN);
  layer.forward({x.data(), {B, N, E}, {N * E, E, 1}}, {y.data(), {B, N, E}, {N * E, E, 1}});
  return compare_output(dir, y);
}

}  // namespace

CaseResult run_case(const fs::path& dir, Isa isa, int threads, Inputs inputs) {
  const nlohmann::json c = read_case(dir);
  CaseResult result;
  if (std::string missing = unsupported_feature_of(c); !missing.empty()) {
    result.detail = "not implemented yet: " + missing;
    return result;
  }
  if (inputs != Inputs::fp32 && c.contains("op") && c["op"] != "attention") {
    result.detail = "bf16 inputs and int8 scores: attention() cases only";
    return result;
  }
  if (c.value("op", "") == "sinusoidal") return run_sinusoidal_case(dir, c);
  if (c.value("op", "") == "mha") return run_mha_case(dir, c, isa, threads);

  const npy::Array qa = npy::load(dir / "q.npy"), ka = npy::load(dir / "k.npy"),
                   va = npy::load(dir / "v.npy"), ea = npy::load(dir / "expected_out.npy");
  const auto &qs = shape4(qa, dir / "q.npy"), &ks = shape4(ka, dir / "k.npy"), &vs = shape4(va, dir / "v.npy");
  const std::vector<float> q = qa.values<float>(), k = ka.values<float>(), v = va.values<float>();
  const std::vector<double> expected = ea.values<double>();
  std::vector<double> expected_lse;
  if (fs::exists(dir / "expected_lse.npy")) expected_lse = npy::load(dir / "expected_lse.npy").values<double>();

  AttentionOptions options;
  options.isa = isa;
  options.threads = threads;
  std::vector<std::int64_t> key_lengths;
  if (fs::exists(dir / "key_lengths.npy")) key_lengths = npy::load(dir / "key_lengths.npy").values<std::int64_t>();
  options.key_lengths = key_lengths;
  std::vector<std::uint8_t> mask;
  if (fs::exists(dir / "mask.npy")) {
    const npy::Array m = npy::load(dir / "mask.npy");
    mask = m.values<std::uint8_t>();
    options.mask = {mask.data(), {m.shape.size() == 2 ? m.shape[0] : -1, m.shape.size() == 2 ? m.shape[1] : -1},
                    {m.shape.size() == 2 ? m.shape[1] : 0, 1}};
  }
  std::vector<float> wq, wk, w;
  if (fs::exists(dir / "additive_w.npy")) {
    const npy::Array a_wq = npy::load(dir / "additive_wq.npy"), a_wk = npy::load(dir / "additive_wk.npy");
    wq = a_wq.values<float>(), wk = a_wk.values<float>(), w = npy::load(dir / "additive_w.npy").values<float>();
    auto view = [](const npy::Array& a, const std::vector<float>& data) {
      const std::int64_t rows = a.shape.size() == 2 ? a.shape[0] : -1, cols = a.shape.size() == 2 ? a.shape[1] : -1;
      return TensorView<const float, 2>{data.data(), {rows, cols}, {cols, 1}};
    };
    options.additive = {view(a_wq, wq), view(a_wk, wk), w};
  }
  if (c.contains("rope_pairing")) {
    options.rope = {parse_rope_pairing(c["rope_pairing"].get<std::string>()), c.value("rope_base", 10000.0)};
  }
  options.alibi = c.value("alibi", false);
  std::vector<float> rel_table;
  double max_abs_bias = 0;
  if (fs::exists(dir / "rel_table.npy")) {
    const npy::Array t = npy::load(dir / "rel_table.npy");
    rel_table = t.values<float>();
    const std::int64_t rows = t.shape.size() == 2 ? t.shape[0] : -1, cols = t.shape.size() == 2 ? t.shape[1] : -1;
    options.relative_bias = {rel_table.data(), {rows, cols}, {cols, 1}};
    for (float x : rel_table) max_abs_bias = std::max<double>(max_abs_bias, std::abs(x));
  }
  if (options.alibi) max_abs_bias += alibi_slopes(qs[1])[0] * static_cast<double>(std::max(qs[2], ks[2]));
  std::vector<float> sinks;
  std::vector<std::int64_t> cu_seqlens_q, cu_seqlens_k;
  if (fs::exists(dir / "sinks.npy")) sinks = npy::load(dir / "sinks.npy").values<float>();
  if (fs::exists(dir / "cu_seqlens_q.npy")) cu_seqlens_q = npy::load(dir / "cu_seqlens_q.npy").values<std::int64_t>();
  if (fs::exists(dir / "cu_seqlens_k.npy")) cu_seqlens_k = npy::load(dir / "cu_seqlens_k.npy").values<std::int64_t>();
  options.sinks = sinks;
  options.cu_seqlens_q = cu_seqlens_q, options.cu_seqlens_k = cu_seqlens_k;
  if (c.contains("softcap")) options.softcap = c["softcap"].get<float>();
  options.sink_keys = c.value("sink_keys", std::int64_t{0});
  if (c.contains("scale")) options.scale = c["scale"].get<float>();
  options.normalizer = parse_normalizer(c.value("normalizer", "softmax"));
  if (c.contains("sigmoid_bias")) options.sigmoid_bias = c["sigmoid_bias"].get<float>();
  const bool softmax = options.normalizer == Normalizer::softmax;
  if (inputs == Inputs::int8_scores) {
    if (!softmax || options.softcap || options.additive.enabled()) {
      result.detail = "int8 scores: softmax, without soft-capping or additive scores";
      return result;
    }
    options.qk_precision = QkPrecision::int8;
  }
  if (c.contains("window")) options.window = {c["window"][0].get<std::int64_t>(), c["window"][1].get<std::int64_t>()};

  std::vector<float> out(static_cast<std::size_t>(qs[0] * qs[1] * qs[2] * vs[3]), NAN);
  std::vector<float> lse(static_cast<std::size_t>(qs[0] * qs[1] * qs[2]), NAN);
  if (out.size() != expected.size()) throw Error((dir / "expected_out.npy").string() + ": size disagrees with q and v");
  const auto out_view = bhnd(out.data(), qs[0], qs[1], qs[2], vs[3]);
  const auto lse_view = softmax ? bhn(lse.data(), qs[0], qs[1], qs[2]) : TensorView<float, 3>{};

  // The README's bound: rel · max(1, max |expected|) + 1e-6 · max |s| · max |v|, rel = 1e-5
  // for fp32, 2e-2 for bf16.
  const double rel = inputs == Inputs::fp32 ? 1e-5 : 2e-2;
  const double score_rel = inputs == Inputs::int8_scores ? kInt8ScoreRel : 1e-6;
  const double scale = c.contains("scale") ? c["scale"].get<double>() : 1.0 / std::sqrt(double(qs[3]));
  // Position terms add at most max_abs_bias to a logit (RoPE keeps |q|·|k| and is bounded by
  // the product of norms; the unrotated dot is used as its estimate).
  double max_abs_score = max_abs_bias, max_abs_value = 0, max_expected = 0;
  for (float x : w) max_abs_score += std::abs(x);  // additive: |wᵀ tanh(.)| <= Σ |w|
  for (float x : v) max_abs_value = std::max<double>(max_abs_value, std::abs(x));
  for (double x : expected) max_expected = std::max(max_expected, std::abs(x));
  const std::int64_t group = qs[1] / ks[1];
  for (std::int64_t b = 0; b < (w.empty() ? qs[0] : 0); ++b)
    for (std::int64_t h = 0; h < qs[1]; ++h)
      for (std::int64_t i = 0; i < qs[2]; ++i)
        for (std::int64_t j = 0; j < ks[2]; ++j) {
          double dot = 0;
          for (std::int64_t d = 0; d < qs[3]; ++d)
            dot += double(q[((b * qs[1] + h) * qs[2] + i) * qs[3] + d]) * k[((b * ks[1] + h / group) * ks[2] + j) * ks[3] + d];
          max_abs_score = std::max(max_abs_score, std::abs(scale * dot));
        }
  // Rounding q and k to bf16 moves a logit s by up to about |s| · 2^-8 before any arithmetic:
  // past |s| = 64 (a shift of 1/4, the weights off by up to 28 %) no bf16 implementation
  // meets the bf16 tolerance, so such a case (large_logits, |s| ~ 600) is not run on bf16.
  constexpr double kBf16LogitLimit = 64;
  if (inputs == Inputs::bf16 && max_abs_score > kBf16LogitLimit) {
    result.detail = "bf16 inputs: logits up to " + std::to_string(max_abs_score) + ", rounding q and k moves them by ~" +
                    std::to_string(max_abs_score / 256);
    return result;
  }

  if (inputs == Inputs::bf16) {
    auto rounded = [](const std::vector<float>& x) {
      std::vector<bf16> y(x.size());
      std::transform(x.begin(), x.end(), y.begin(), [](float e) { return bf16(e); });
      return y;
    };
    const std::vector<bf16> qh = rounded(q), kh = rounded(k), vh = rounded(v);
    attention(bhnd<const bf16>(qh.data(), qs[0], qs[1], qs[2], qs[3]),
              bhnd<const bf16>(kh.data(), ks[0], ks[1], ks[2], ks[3]),
              bhnd<const bf16>(vh.data(), vs[0], vs[1], vs[2], vs[3]), out_view, options, lse_view);
  } else {
    attention(bhnd<const float>(q.data(), qs[0], qs[1], qs[2], qs[3]),
              bhnd<const float>(k.data(), ks[0], ks[1], ks[2], ks[3]),
              bhnd<const float>(v.data(), vs[0], vs[1], vs[2], vs[3]), out_view, options, lse_view);
  }

  result.bound = tolerance(max_expected, max_abs_score, max_abs_value, rel, score_rel);
  bool exact_inf = true;
  result.max_error = max_error(out, expected, exact_inf);
  if (!expected_lse.empty() && softmax) {
    double lse_max = 0;
    for (double x : expected_lse) if (std::isfinite(x)) lse_max = std::max(lse_max, std::abs(x));
    const double lse_bound = tolerance(lse_max, max_abs_score, 1.0, rel, score_rel);
    const double lse_error = max_error(lse, expected_lse, exact_inf);
    if (lse_error > lse_bound) {
      result.status = CaseResult::Status::failed;
      result.detail = "lse error " + std::to_string(lse_error) + " > " + std::to_string(lse_bound);
      return result;
    }
  }
  const bool ok = exact_inf && result.max_error <= result.bound;
  result.status = ok ? CaseResult::Status::passed : CaseResult::Status::failed;
  result.detail = !exact_inf ? "a query that sees no key must give lse = -inf"
                             : "max error " + std::to_string(result.max_error) + (ok ? " <= " : " > ") +
                                   std::to_string(result.bound);
  return result;
}

}  // namespace longattn::golden
