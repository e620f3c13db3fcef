#include "tests/attention_tester.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <utility>

#include "bench/cache_line_allocator.hpp"
#include "engine/attention_validation.hpp"
#include "engine/flash_attention.hpp"
#include "simd/kernel_table.hpp"
#include "tools/golden_cases.hpp"

namespace longattn::testing {

bool within_tolerance(const std::vector<float>& actual, const std::vector<double>& expected,
                      double max_abs_score, double max_abs_value, double rel) {
  double max_expected = 0, max_error = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (std::isinf(expected[i])) {
      if (actual[i] != expected[i]) return false;
      continue;
    }
    if (!std::isfinite(actual[i])) return false;
    max_expected = std::max(max_expected, std::abs(expected[i]));
    max_error = std::max(max_error, std::abs(actual[i] - expected[i]));
  }
  const double bound = golden::tolerance(max_expected, max_abs_score, max_abs_value, rel);
  if (max_error > bound) {
    MESSAGE("max error " << max_error << " exceeds " << bound);
    return false;
  }
  return true;
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
    if (!simd::cpu_supports(isa)) {
      throw Error("LONGATTN_TEST_ISAS: this CPU cannot run " + name);
    }
    named.push_back(isa);
  }
  return named;
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

bool run_on_this_path(Isa isa, int threads, double visible_pairs, std::int64_t d, std::int64_t dv) {
  if (!kUnderAddressSanitizer || isa != Isa::scalar) return true;
  return threads == 1 && visible_pairs * double(d + dv) <= kScalarWorkLimitUnderAsan;
}

// A [B, H, N, D] tensor stored in the tester's layout, with a view in logical order.
struct Stored {
  bench::Tensor data;  // cache-line aligned like a framework's: value rows are read in place
  std::int64_t B, H, N, D;
  Layout layout;
  Stored(std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t d, Layout l)
      : data(b * h * n * d), B(b), H(h), N(n), D(d), layout(l) {}
  template <class T>
  HeadsView<T> view_of(T* p) const {
    switch (layout) {
      case Layout::bhnd: return bhnd(p, B, H, N, D);
      case Layout::bnhd: return bnhd(p, B, N, H, D);
      case Layout::bhdn: return {p, {B, H, N, D}, {H * D * N, D * N, 1, N}};
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
  // Contiguous BHND copy of the logical tensor.
  std::vector<float> to_bhnd() const {
    const auto v = cview();
    std::vector<float> out(data.size());
    std::size_t i = 0;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t n = 0; n < N; ++n)
          for (std::int64_t d = 0; d < D; ++d)
            out[i++] = v.data[b * v.strides[0] + h * v.strides[1] + n * v.strides[2] + d * v.strides[3]];
    return out;
  }
};

}  // namespace

void AttentionTester::check() const {
  reference::Problem p = p_;
  std::mt19937 rng(seed_);
  std::normal_distribution<float> normal(0.0f, magnitude_);
  Stored q(p.batch, p.q_heads, p.nq, p.d, layout_), k(p.batch, p.kv_heads, p.nk, p.d, layout_),
      v(p.batch, p.kv_heads, p.nk, p.dv, layout_);
  for (Stored* t : {&q, &k, &v}) std::generate(t->data.begin(), t->data.end(), [&] { return normal(rng); });
  for (float& x : v.data) x *= value_scale_;
  if (drift_ != 0.0f) {
    const HeadsView<float> qv = q.view(), kv = k.view();
    for (std::int64_t b = 0; b < p.batch; ++b) {
      for (std::int64_t h = 0; h < p.q_heads; ++h) {
        for (std::int64_t i = 0; i < p.nq; ++i) {
          float& x = qv.data[b * qv.strides[0] + h * qv.strides[1] + i * qv.strides[2]];
          x = 1.0f + std::abs(x);
        }
      }
      for (std::int64_t h = 0; h < p.kv_heads; ++h) {
        for (std::int64_t j = 0; j < p.nk; ++j) kv.data[b * kv.strides[0] + h * kv.strides[1] + j * kv.strides[2]] += drift_ * j;
      }
    }
  }
  std::bernoulli_distribution coin_mask(std::max(0.0, mask_density_)), coin_block(std::max(0.0, block_density_));
  if (mask_density_ >= 0) {
    p.mask.resize(p.nq * p.nk);
    for (auto& m : p.mask) m = coin_mask(rng);
  }
  if (p.block_q > 0) {
    for (std::int64_t qb = 0; qb * p.block_q < p.nq; ++qb)
      for (std::int64_t kb = 0; kb * p.block_k < p.nk; ++kb)
        if (coin_block(rng)) p.visible_blocks.push_back({qb, kb});
  }
  if (additive_da_ > 0) {
    std::normal_distribution<float> weight(0.0f, 1.0f / std::sqrt(float(p.d)));
    for (auto* w : {&p.additive_wq, &p.additive_wk}) {
      w->resize(additive_da_ * p.d);
      for (float& x : *w) x = weight(rng);
    }
    p.additive_w.resize(additive_da_);
    for (float& x : p.additive_w) x = normal(rng);
  }
  if (relative_clip_ >= 0) {
    p.relative_bias.resize(p.q_heads * (2 * relative_clip_ + 1));
    for (float& x : p.relative_bias) x = normal(rng);
  }
  if (bf16_ == Bf16::all) q.round_to_bf16();
  if (bf16_ != Bf16::none) {
    for (Stored* t : {&k, &v}) t->round_to_bf16();
  }
  for (auto [to, from] : {std::pair{&p.q, &q}, {&p.k, &k}, {&p.v, &v}}) {
    const std::vector<float> values = from->to_bhnd();
    to->assign(values.begin(), values.end());
  }
  const reference::Result expected = reference::attention(p);
  double max_abs_value = 0;
  for (double x : p.v) max_abs_value = std::max<double>(max_abs_value, std::abs(x));

  AttentionOptions options;
  if (p.scale != 0) options.scale = static_cast<float>(p.scale);
  options.window = {p.window_left, p.window_right};
  options.normalizer = parse_normalizer(p.normalizer);
  if (!std::isnan(p.sigmoid_bias)) options.sigmoid_bias = static_cast<float>(p.sigmoid_bias);
  if (!p.additive_w.empty()) {
    const std::int64_t da = static_cast<std::int64_t>(p.additive_w.size());
    options.additive = {{p.additive_wq.data(), {da, p.d}, {p.d, 1}}, {p.additive_wk.data(), {da, p.d}, {p.d, 1}}, p.additive_w};
  }
  if (!p.rope.empty()) options.rope = {parse_rope_pairing(p.rope), p.rope_base};
  options.alibi = p.alibi;
  if (!p.relative_bias.empty()) {
    options.relative_bias = {p.relative_bias.data(), {p.q_heads, 2 * relative_clip_ + 1}, {2 * relative_clip_ + 1, 1}};
  }
  const bool softmax = p.normalizer == "softmax";
  options.key_lengths = p.key_lengths;
  if (!p.mask.empty()) options.mask = {p.mask.data(), {p.nq, p.nk}, {p.nk, 1}};
  if (p.block_q > 0) options.block_sparse = {p.block_q, p.block_k, p.visible_blocks};

  INFO("bf16 (0 none, 1 all, 2 k and v)=" << static_cast<int>(bf16_) << " rope=" << p.rope << " alibi=" << p.alibi
                                          << " relative=" << relative_clip_);
  INFO("mask=" << !p.mask.empty() << " blocks=" << p.visible_blocks.size() << " lengths=" << p.key_lengths.size());
  INFO("B=" << p.batch << " Hq=" << p.q_heads << " Hkv=" << p.kv_heads << " Nq=" << p.nq
            << " Nk=" << p.nk << " D=" << p.d << " Dv=" << p.dv << " window=(" << p.window_left
            << ", " << p.window_right << ")");
  // Every ISA path; on bf16 q, k, v the native products, and where a path has them (AVX512-BF16)
  // the widened ones too.
  std::vector<std::pair<Isa, Bf16Products>> paths;
  for (Isa isa : runnable_isas()) {
    paths.push_back({isa, Bf16Products::native});
    if (bf16_ == Bf16::all && simd::kernels_for(isa).bf16_dot != nullptr) paths.push_back({isa, Bf16Products::widened});
  }
  for (const auto& [isa, product] : paths) {
    std::vector<float> first_out, first_lse;
    for (int threads : {1, 2}) {
      if (!run_on_this_path(isa, threads, double(expected.visible_pairs), p.d, p.dv)) continue;
      CAPTURE(to_string(isa));
      CAPTURE(to_string(product));
      CAPTURE(threads);
      options.isa = isa;
      options.bf16_products = product;
      options.threads = threads;
      Stored out(p.batch, p.q_heads, p.nq, p.dv, layout_);
      std::fill(out.data.begin(), out.data.end(), std::nanf(""));
      std::vector<float> lse(p.batch * p.q_heads * p.nq, std::nanf(""));
      const auto lse_view = softmax ? bhn(lse.data(), p.batch, p.q_heads, p.nq) : TensorView<float, 3>{};
      auto run = [&](const auto& qv, const auto& kv, const auto& vv) {
        if (budget_ == 0 && chunk_ == 0) return attention(qv, kv, vv, out.view(), options, lse_view);
        const auto shape = engine::validate_attention(qv, kv, vv, out.view(), lse_view, options);
        engine::FlashPlan plan = engine::make_flash_plan(shape, options);
        if (budget_ > 0) plan.packed_budget_bytes = budget_;
        if (chunk_ > 0) plan.chunk_bytes = chunk_;
        return engine::run_flash_attention(plan, qv, kv, vv, out.view(), lse_view);
      };
      const AttentionStats stats = bf16_ == Bf16::all           ? run(q.half_view(), k.half_view(), v.half_view())
                                   : bf16_ == Bf16::keys_values ? run(q.cview(), k.half_view(), v.half_view())
                                                                : run(q.cview(), k.cview(), v.cview());
      CHECK(stats.isa == isa);
      CHECK(stats.visible_pairs == expected.visible_pairs);
      CHECK((!stats.bf16_products || (bf16_ == Bf16::all && product == Bf16Products::native)));
      const double score_depth = p.additive_w.empty() ? double(p.d) : double(p.additive_w.size());
      if (p.normalizer != "linear") CHECK(stats.flops == 2.0 * (score_depth + double(p.dv)) * double(expected.visible_pairs));
      const std::vector<float> actual = out.to_bhnd();
      // The native products round P to bf16: the bf16 tolerance (the golden README's) on
      // out. The scores' products are exact and summed in fp32, so lse keeps fp32's, unless
      // RoPE's rotated q and k were rounded to bf16 first.
      CHECK(within_tolerance(actual, expected.out, expected.max_abs_score, max_abs_value,
                             stats.bf16_products ? 2e-2 : 1e-5));
      const bool rounded_scores = stats.bf16_products && !p.rope.empty();
      if (softmax) CHECK(within_tolerance(lse, expected.lse, expected.max_abs_score, 1.0, rounded_scores ? 2e-2 : 1e-5));
      if (threads == 1) {
        first_out = actual;
        first_lse = lse;
      } else {
        // Work is partitioned by data, never by thread: the bits must not change.
        CHECK(std::memcmp(first_out.data(), actual.data(), actual.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(first_lse.data(), lse.data(), lse.size() * sizeof(float)) == 0);
      }
    }
  }
}

}  // namespace longattn::testing
