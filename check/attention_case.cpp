#include "check/attention_case.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <utility>

#include "bench/cache_line_allocator.hpp"
#include "engine/attention_validation.hpp"
#include "engine/flash_plan.hpp"
#include "engine/flash_attention.hpp"
#include "engine/schedule.hpp"
#include "longattn/attention.hpp"
#include "simd/kernel_table.hpp"
#include "tools/golden_cases.hpp"

namespace longattn::check {

std::string to_string(Layout layout) {
  switch (layout) {
    case Layout::bhnd: return "bhnd";
    case Layout::bnhd: return "bnhd";
    case Layout::bhdn: return "bhdn";
    case Layout::padded: return "padded";
  }
  return "?";
}

Comparison compare(const std::vector<float>& actual, const std::vector<double>& expected, double max_abs_score,
                   double max_abs_value, double rel, double score_rel) {
  Comparison c;
  double max_expected = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (!std::isfinite(expected[i]) || !std::isfinite(actual[i])) {
      const bool met = std::isnan(expected[i]) ? std::isnan(actual[i]) : actual[i] == expected[i];
      if (!met && c.passed) {
        std::ostringstream why;
        why << "element " << i << " is " << actual[i] << " where " << expected[i] << " is expected";
        c.passed = false, c.failure = why.str();
      }
      continue;
    }
    max_expected = std::max(max_expected, std::abs(expected[i]));
    c.error = std::max(c.error, std::abs(actual[i] - expected[i]));
  }
  c.bound = golden::tolerance(max_expected, max_abs_score, max_abs_value, rel, score_rel);
  if (c.passed && c.error > c.bound) {
    std::ostringstream why;
    why << "max error " << c.error << " exceeds " << c.bound;
    c.passed = false, c.failure = why.str();
  }
  return c;
}

std::vector<Isa> runnable_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::scalar}) {
    if (simd::cpu_supports(isa)) isas.push_back(isa);
  }
  // LONGATTN_TEST_ISAS=avx512[,avx2,...] narrows them: under an emulator
  // (scripts/emulated_avx512.sh) one path is all there is time for. A path the CPU cannot
  // run is an error, never a suite that silently tests nothing.
  const char* only = std::getenv("LONGATTN_TEST_ISAS");
  if (only == nullptr || *only == '\0') return isas;
  std::vector<Isa> named;
  std::istringstream names(only);
  for (std::string name; std::getline(names, name, ',');) {
    const Isa isa = parse_isa(name);
    if (!simd::cpu_supports(isa)) throw Error("LONGATTN_TEST_ISAS: this CPU cannot run " + name);
    named.push_back(isa);
  }
  return named;
}

std::string AttentionCase::describe() const {
  const reference::Problem& p = problem;
  std::ostringstream s;
  s << "B=" << p.batch << " Hq=" << p.q_heads << " Hkv=" << p.kv_heads << " Nq=" << p.nq << " Nk=" << p.nk
    << " D=" << p.d << " Dv=" << p.dv << " layout=" << to_string(layout);
  if (p.window_left >= 0 || p.window_right >= 0) s << " window=(" << p.window_left << "," << p.window_right << ")";
  if (p.query_start) s << " positions=(" << *p.query_start << "," << p.key_start << ")";
  if (p.scale != 0) s << " scale=" << p.scale;
  if (!p.key_lengths.empty()) {
    s << " key_lengths=";
    for (std::size_t b = 0; b < p.key_lengths.size(); ++b) s << (b > 0 ? "," : "") << p.key_lengths[b];
  }
  if (mask_density >= 0) s << " mask=" << mask_density;
  if (p.block_q > 0) s << " blocks=" << p.block_q << "x" << p.block_k << "@" << block_density;
  if (p.normalizer != "softmax") s << " normalizer=" << p.normalizer;
  if (additive_da > 0) s << " additive=" << additive_da;
  if (!p.rope.empty()) s << " rope=" << p.rope;
  if (p.alibi) s << " alibi";
  if (relative_clip >= 0) s << " relative=" << relative_clip;
  if (bias_dims > 0) s << " score_bias=" << bias_dims << "d@" << bias_hidden;
  if (p.softcap > 0) s << " softcap=" << p.softcap;
  if (sinks) s << " sinks";
  if (p.sink_keys > 0) s << " sink_keys=" << p.sink_keys;
  if (!p.cu_seqlens_q.empty()) {
    s << " sequences=";
    for (std::size_t i = 0; i + 1 < p.cu_seqlens_q.size(); ++i) {
      s << (i > 0 ? "," : "") << p.cu_seqlens_q[i + 1] - p.cu_seqlens_q[i] << "/" << p.cu_seqlens_k[i + 1] - p.cu_seqlens_k[i];
    }
  }
  if (bf16 != Bf16Inputs::none) s << (bf16 == Bf16Inputs::all ? " bf16" : " bf16-kv");
  if (qk_int8) s << " qk=int8";
  if (magnitude != 1.0f) s << " magnitude=" << magnitude;
  if (drift != 0.0f) s << " drift=" << drift;
  if (packed_budget > 0) s << " packed_budget=" << packed_budget;
  if (chunk_bytes > 0) s << " chunk_bytes=" << chunk_bytes;
  for (const Poison& x : poisons) s << " " << x.tensor << "[" << x.b << "," << x.h << "," << x.n << "," << x.c << "]=" << x.value;
  return s.str();
}

namespace {

// Under AddressSanitizer every load is checked, and the scalar kernels, a load per float,
// took most of the sanitizer run (perf: over 60 % once the vector kernels ran at full
// speed). There they run on one thread and up to a problem size: tails, chunks and tile
// edges all occur below it, the work partition is the vector paths' too, and the release
// run still holds the scalar results at every size and both thread counts.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUnderAddressSanitizer = true;
#else
constexpr bool kUnderAddressSanitizer = false;
#endif
constexpr double kScalarWorkLimitUnderAsan = double(1 << 28);  // visible pairs × (D + Dv)

// The scores' error relative to max |s| · max |v| where the bf16 products run on q and k
// rotated in fp32 and rounded to bf16: 2^-8 on the scores, twice that on out.
constexpr double kRotatedBf16ScoreError = 1.0 / 128;

// Every ISA path; on bf16 q, k, v the native products, and where a path has them
// (AVX512-BF16) the widened ones too. int8 scores: the paths that have them, with P·V in
// bf16 (native) where it runs and in fp32 (widened).
std::vector<std::pair<Isa, Bf16Products>> paths_of(const AttentionCase& c, const RunOn& on) {
  std::vector<std::pair<Isa, Bf16Products>> paths;
  for (Isa isa : on.isas) {
    const simd::KernelTable& kernels = simd::kernels_for(isa);
    if (c.qk_int8 && kernels.int8_dot == nullptr) continue;
    paths.push_back({isa, Bf16Products::native});
    const bool widened = c.qk_int8 ? kernels.int8_dot_bf16 != nullptr : c.bf16 == Bf16Inputs::all && kernels.bf16_dot;
    if (widened) paths.push_back({isa, Bf16Products::widened});
  }
  return paths;
}

bool run_on_this_path(Isa isa, int threads, double visible_pairs, std::int64_t d, std::int64_t dv) {
  if (!kUnderAddressSanitizer || isa != Isa::scalar) return true;
  return threads == 1 && visible_pairs * double(d + dv) <= kScalarWorkLimitUnderAsan;
}

// A [B, H, N, D] tensor stored in a case's layout, with a view in logical order.
struct Stored {
  static constexpr std::int64_t kPadding = 3;  // floats past each row of the padded layout
  bench::Tensor data;  // cache-line aligned like a framework's: value rows are read in place
  std::int64_t B, H, N, D;
  Layout layout;
  Stored(std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t d, Layout l)
      : data(b * h * n * (d + (l == Layout::padded ? kPadding : 0))), B(b), H(h), N(n), D(d), layout(l) {}
  template <class T>
  HeadsView<T> view_of(T* p) const {
    switch (layout) {
      case Layout::bhnd: return bhnd(p, B, H, N, D);
      case Layout::bnhd: return bnhd(p, B, N, H, D);
      case Layout::bhdn: return {p, {B, H, N, D}, {H * D * N, D * N, 1, N}};
      case Layout::padded: {
        const std::int64_t row = D + kPadding;
        return {p, {B, H, N, D}, {H * N * row, N * row, row, 1}};
      }
    }
    return {};
  }
  HeadsView<float> view() { return view_of(data.data()); }
  HeadsView<const float> cview() const { return view_of<const float>(data.data()); }
  // Rounds every element to bf16 (data then holds the widened values) and keeps the bf16 copy.
  void round_to_bf16() {
    half.resize(data.size());
    for (std::size_t i = 0; i < data.size(); ++i) {
      half[i] = bf16(data[i]);
      data[i] = static_cast<float>(half[i]);
    }
  }
  HeadsView<const bf16> half_view() const { return view_of<const bf16>(half.data()); }
  std::vector<bf16, bench::CacheLineAllocator<bf16>> half;  // the bf16 copy, same layout
  float& at(std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t c) {
    const HeadsView<float> v = view();
    return v.data[b * v.strides[0] + h * v.strides[1] + n * v.strides[2] + c * v.strides[3]];
  }
  // Contiguous BHND copy of the logical tensor.
  std::vector<double> to_bhnd() const {
    const auto v = cview();
    std::vector<double> out(static_cast<std::size_t>(B * H * N * D));
    std::size_t i = 0;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t n = 0; n < N; ++n)
          for (std::int64_t d = 0; d < D; ++d)
            out[i++] = v.data[b * v.strides[0] + h * v.strides[1] + n * v.strides[2] + d * v.strides[3]];
    return out;
  }
  std::vector<float> to_bhnd_float() const {
    const std::vector<double> x = to_bhnd();
    return {x.begin(), x.end()};
  }
};

// The case's inputs drawn, and the problem the reference computes on them.
struct Drawn {
  reference::Problem p;
  Stored q, k, v;
};

// p.score_bias, the same wherever the case shares a dimension (bias_dims).
void draw_score_bias(const AttentionCase& c, reference::Problem& p, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::bernoulli_distribution hidden(c.bias_hidden);
  const std::int64_t matrix = p.nq * p.nk;
  p.score_bias.resize(p.batch * p.q_heads * matrix);
  for (std::int64_t b = 0; b < p.batch; ++b) {
    for (std::int64_t h = 0; h < p.q_heads; ++h) {
      float* to = &p.score_bias[(b * p.q_heads + h) * matrix];
      if (c.bias_dims < 4 && b > 0) {
        std::copy_n(&p.score_bias[h * matrix], matrix, to);
      } else if (c.bias_dims < 3 && h > 0) {
        std::copy_n(&p.score_bias[b * p.q_heads * matrix], matrix, to);
      } else {
        for (std::int64_t e = 0; e < matrix; ++e) to[e] = hidden(rng) ? -INFINITY : normal(rng);
      }
    }
  }
}

Drawn draw(const AttentionCase& c) {
  Drawn in{c.problem, {c.problem.batch, c.problem.q_heads, c.problem.nq, c.problem.d, c.layout},
           {c.problem.batch, c.problem.kv_heads, c.problem.nk, c.problem.d, c.layout},
           {c.problem.batch, c.problem.kv_heads, c.problem.nk, c.problem.dv, c.layout}};
  reference::Problem& p = in.p;
  std::mt19937 rng(c.seed);
  std::normal_distribution<float> normal(0.0f, c.magnitude);
  for (Stored* t : {&in.q, &in.k, &in.v}) std::generate(t->data.begin(), t->data.end(), [&] { return normal(rng); });
  for (float& x : in.v.data) x *= c.value_scale;
  if (c.drift != 0.0f) {
    for (std::int64_t b = 0; b < p.batch; ++b) {
      for (std::int64_t h = 0; h < p.q_heads; ++h) {
        for (std::int64_t i = 0; i < p.nq; ++i) in.q.at(b, h, i, 0) = 1.0f + std::abs(in.q.at(b, h, i, 0));
      }
      for (std::int64_t h = 0; h < p.kv_heads; ++h) {
        for (std::int64_t j = 0; j < p.nk; ++j) in.k.at(b, h, j, 0) += c.drift * static_cast<float>(j);
      }
    }
  }
  std::bernoulli_distribution coin_mask(std::max(0.0, c.mask_density)), coin_block(std::max(0.0, c.block_density));
  if (c.mask_density >= 0) {
    p.mask.resize(p.nq * p.nk);
    for (auto& m : p.mask) m = coin_mask(rng);
  }
  if (p.block_q > 0 && p.visible_blocks.empty()) {
    for (std::int64_t qb = 0; qb * p.block_q < p.nq; ++qb)
      for (std::int64_t kb = 0; kb * p.block_k < p.nk; ++kb)
        if (coin_block(rng)) p.visible_blocks.push_back({qb, kb});
  }
  if (c.additive_da > 0) {
    std::normal_distribution<float> weight(0.0f, 1.0f / std::sqrt(float(p.d)));
    for (auto* w : {&p.additive_wq, &p.additive_wk}) {
      w->resize(c.additive_da * p.d);
      for (float& x : *w) x = weight(rng);
    }
    p.additive_w.resize(c.additive_da);
    for (float& x : p.additive_w) x = normal(rng);
  }
  if (c.relative_clip >= 0) {
    p.relative_bias.resize(p.q_heads * (2 * c.relative_clip + 1));
    for (float& x : p.relative_bias) x = normal(rng);
  }
  if (c.bias_dims > 0) draw_score_bias(c, p, rng);
  if (c.sinks) {
    std::normal_distribution<float> logit(0.0f, 2.0f);
    p.sinks.resize(p.q_heads);
    for (float& x : p.sinks) x = logit(rng);
  }
  if (c.bf16 == Bf16Inputs::all) in.q.round_to_bf16();
  if (c.bf16 != Bf16Inputs::none) {
    for (Stored* t : {&in.k, &in.v}) t->round_to_bf16();
  }
  for (const Poison& x : c.poisons) {
    Stored& t = x.tensor == 'q' ? in.q : x.tensor == 'k' ? in.k : in.v;
    float& element = t.at(x.b, x.h, x.n, x.c);
    element = x.value;
    if (!t.half.empty()) t.half[static_cast<std::size_t>(&element - t.data.data())] = bf16(x.value);
  }
  p.q = in.q.to_bhnd(), p.k = in.k.to_bhnd(), p.v = in.v.to_bhnd();
  return in;
}

AttentionOptions options_of(const AttentionCase& c, const reference::Problem& p) {
  AttentionOptions options;
  if (p.scale != 0) options.scale = static_cast<float>(p.scale);
  options.window = {p.window_left, p.window_right};
  options.positions = {p.query_start, p.key_start};
  options.normalizer = parse_normalizer(p.normalizer);
  if (!std::isnan(p.sigmoid_bias)) options.sigmoid_bias = static_cast<float>(p.sigmoid_bias);
  if (!p.additive_w.empty()) {
    const std::int64_t da = static_cast<std::int64_t>(p.additive_w.size());
    options.additive = {{p.additive_wq.data(), {da, p.d}, {p.d, 1}}, {p.additive_wk.data(), {da, p.d}, {p.d, 1}}, p.additive_w};
  }
  if (!p.rope.empty()) options.rope = {parse_rope_pairing(p.rope), p.rope_base};
  options.alibi = p.alibi;
  if (!p.relative_bias.empty()) {
    options.relative_bias = {p.relative_bias.data(), {p.q_heads, 2 * c.relative_clip + 1}, {2 * c.relative_clip + 1, 1}};
  }
  if (!p.score_bias.empty()) {  // the first matrix of the dimensions shared, read again through stride 0
    const std::int64_t matrix = p.nq * p.nk;
    options.score_bias = {p.score_bias.data(),
                          {p.batch, p.q_heads, p.nq, p.nk},
                          {c.bias_dims == 4 ? p.q_heads * matrix : 0, c.bias_dims >= 3 ? matrix : 0, p.nk, 1}};
  }
  if (p.softcap > 0) options.softcap = static_cast<float>(p.softcap);
  options.sinks = p.sinks;
  options.sink_keys = p.sink_keys;
  options.cu_seqlens_q = p.cu_seqlens_q, options.cu_seqlens_k = p.cu_seqlens_k;
  options.key_lengths = p.key_lengths;
  if (!p.mask.empty()) options.mask = {p.mask.data(), {p.nq, p.nk}, {p.nk, 1}};
  if (p.block_q > 0) options.block_sparse = {p.block_q, p.block_k, p.visible_blocks};
  return options;
}

// Runs the engine once on the drawn inputs, through a plan with the case's white-box sizes.
AttentionStats run_engine(const AttentionCase& c, const Drawn& in, const AttentionOptions& options, Stored& out,
                          const TensorView<float, 3>& lse) {
  auto run = [&](const auto& qv, const auto& kv, const auto& vv) {
    if (c.packed_budget == 0 && c.chunk_bytes == 0) return attention(qv, kv, vv, out.view(), options, lse);
    if (!options.cu_seqlens_q.empty()) throw Error("check: packed sequences plan each sequence; no white-box sizes");
    const auto shape = engine::validate_attention(qv, kv, vv, out.view(), lse, options);
    engine::FlashPlan plan = engine::make_flash_plan(shape, options);
    if (c.packed_budget > 0) plan.packed_budget_bytes = c.packed_budget;
    if (c.chunk_bytes > 0) plan.chunk_bytes = c.chunk_bytes;
    return engine::run_flash_attention(plan, qv, kv, vv, out.view(), lse);
  };
  switch (c.bf16) {
    case Bf16Inputs::all: return run(in.q.half_view(), in.k.half_view(), in.v.half_view());
    case Bf16Inputs::keys_values: return run(in.q.cview(), in.k.half_view(), in.v.half_view());
    case Bf16Inputs::none: break;
  }
  return run(in.q.cview(), in.k.cview(), in.v.cview());
}

// int8_scores_run for a call, or for any of its packed sequences.
bool int8_scores_run_in(const reference::Problem& p) {
  if (p.cu_seqlens_q.empty()) return int8_scores_run(p.q_heads, p.kv_heads, p.nq);
  for (std::size_t s = 0; s + 1 < p.cu_seqlens_q.size(); ++s) {
    if (int8_scores_run(p.q_heads, p.kv_heads, p.cu_seqlens_q[s + 1] - p.cu_seqlens_q[s])) return true;
  }
  return false;
}

}  // namespace

bool int8_scores_run(std::int64_t q_heads, std::int64_t kv_heads, std::int64_t nq) {
  const engine::AttentionShape shape{.batch = 1, .q_heads = q_heads, .kv_heads = kv_heads, .nq = nq, .nk = 0, .d = 0,
                                     .dv = 0};
  return !engine::queries_fit_one_block(shape, engine::kQueryBlockRows);
}

CaseReport run(const AttentionCase& c, const RunOn& on) {
  CaseReport report;
  report.description = c.describe();
  const Drawn in = draw(c);
  const reference::Problem& p = in.p;
  const reference::Result expected = reference::attention(p);
  double max_abs_value = 0;
  for (double x : p.v) {
    if (std::isfinite(x)) max_abs_value = std::max(max_abs_value, std::abs(x));
  }
  AttentionOptions options = options_of(c, p);
  const bool softmax = p.normalizer == "softmax";
  for (const auto& [isa, product] : paths_of(c, on)) {
    std::vector<float> first_out, first_lse;
    bool first = true;
    for (int threads : on.threads) {
      if (!run_on_this_path(isa, threads, double(expected.visible_pairs), p.d, p.dv)) continue;
      const std::string path = to_string(isa) + " " + to_string(product) + ", " + std::to_string(threads) + " threads: ";
      auto fail = [&](const std::string& why) { report.failures.push_back(path + why); };
      options.isa = isa, options.bf16_products = product, options.threads = threads;
      options.qk_precision = c.qk_int8 ? QkPrecision::int8 : QkPrecision::inputs;
      Stored out(p.batch, p.q_heads, p.nq, p.dv, c.layout);
      std::fill(out.data.begin(), out.data.end(), std::nanf(""));
      std::vector<float> lse(p.batch * p.q_heads * p.nq, std::nanf(""));
      const auto lse_view = softmax ? bhn(lse.data(), p.batch, p.q_heads, p.nq) : TensorView<float, 3>{};
      AttentionStats stats;
      try {
        stats = run_engine(c, in, options, out, lse_view);
      } catch (const std::exception& e) {
        fail(std::string("threw ") + e.what());
        continue;
      }
      ++report.runs;
      if (stats.isa != isa) fail("ran " + to_string(stats.isa));
      if (stats.visible_pairs != expected.visible_pairs) {
        fail("visible pairs " + std::to_string(stats.visible_pairs) + ", expected " + std::to_string(expected.visible_pairs));
      }
      if (stats.bf16_products && !(c.bf16 == Bf16Inputs::all && product == Bf16Products::native)) fail("bf16 products ran");
      if (stats.qk_int8 != (c.qk_int8 && int8_scores_run_in(p))) {
        fail(stats.qk_int8 ? "int8 scores ran" : "int8 scores did not run");
      }
      const double score_depth = p.additive_w.empty() ? double(p.d) : double(p.additive_w.size());
      if (p.normalizer != "linear" && stats.flops != 2.0 * (score_depth + double(p.dv)) * double(expected.visible_pairs)) {
        fail("flops " + std::to_string(stats.flops));
      }
      const std::vector<float> actual = out.to_bhnd_float();
      // The native products round P to bf16: the bf16 tolerance (the golden README's) on
      // out. The scores' products are exact and summed in fp32, so lse keeps fp32's, unless
      // RoPE's rotated q and k were rounded to bf16 first: each score is then off by up to
      // 2^-8 of |q|·|k| (half a bf16 ulp on each side), and out by that times 2 max |v|.
      // int8 scores: their golden tolerance (bf16's rel, kInt8ScoreRel on the scores).
      const bool rounded_scores = (stats.bf16_products && !p.rope.empty()) || stats.qk_int8;
      const double score_rel = stats.qk_int8 ? golden::kInt8ScoreRel : rounded_scores ? kRotatedBf16ScoreError : 1e-6;
      const bool bf16_out = stats.bf16_products || stats.qk_int8;
      std::vector<Comparison> comparisons{compare(actual, expected.out, expected.max_abs_score, max_abs_value,
                                                  bf16_out ? 2e-2 : 1e-5, score_rel)};
      if (softmax) {
        comparisons.push_back(
            compare(lse, expected.lse, expected.max_abs_score, 1.0, rounded_scores ? 2e-2 : 1e-5, score_rel));
      }
      for (std::size_t i = 0; i < comparisons.size(); ++i) {
        const Comparison& x = comparisons[i];
        if (x.bound > 0) report.worst_ratio = std::max(report.worst_ratio, x.error / x.bound);
        if (!x.passed) fail((i == 0 ? "out: " : "lse: ") + x.failure);
      }
      if (first) {
        first_out = actual, first_lse = lse, first = false;
        continue;
      }
      // Work is partitioned by data, never by thread: the bits must not change.
      if (std::memcmp(first_out.data(), actual.data(), actual.size() * sizeof(float)) != 0 ||
          std::memcmp(first_lse.data(), lse.data(), lse.size() * sizeof(float)) != 0) {
        fail("bits differ from " + std::to_string(on.threads.front()) + " thread(s)");
      }
    }
  }
  return report;
}

}  // namespace longattn::check
