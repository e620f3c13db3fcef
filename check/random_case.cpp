#include "check/random_case.hpp"

#include <algorithm>
#include <cmath>
#include <random>

namespace longattn::check {

namespace {

// One case's draws: every choice the case makes, from its own generator.
class Dice {
 public:
  Dice(std::uint64_t seed, std::int64_t index) {
    std::seed_seq words{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                        static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32)};
    rng_.seed(words);
  }

  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
  // An integer in [lo, hi], small ones as likely as large ones by order of magnitude.
  std::int64_t log_uniform(std::int64_t lo, std::int64_t hi) {
    const double x = std::exp(uniform(std::log(double(lo)), std::log(double(hi) + 1.0)));
    return std::clamp(static_cast<std::int64_t>(x), lo, hi);
  }
  template <class T>
  T pick(std::initializer_list<T> options) {
    const auto i = std::uniform_int_distribution<std::size_t>(0, options.size() - 1)(rng_);
    return *(options.begin() + i);
  }
  // A divisor of n, each equally likely.
  std::int64_t divisor(std::int64_t n) {
    std::vector<std::int64_t> divisors;
    for (std::int64_t x = 1; x <= n; ++x) {
      if (n % x == 0) divisors.push_back(x);
    }
    return divisors[std::uniform_int_distribution<std::size_t>(0, divisors.size() - 1)(rng_)];
  }
  unsigned seed() { return static_cast<unsigned>(rng_()); }

 private:
  std::mt19937_64 rng_;
};

RandomCase draw_layer(Dice& dice, const DrawLimits& limits) {
  const std::int64_t heads = dice.pick<std::int64_t>({1, 2, 3, 4, 6, 8}), kv_heads = dice.divisor(heads);
  const std::int64_t head_dim = dice.pick<std::int64_t>({2, 4, 5, 8, 12, 16, 32});
  const std::int64_t e = dice.chance(0.7) ? heads * head_dim : dice.log_uniform(4, 128);
  const std::int64_t n = dice.log_uniform(1, std::min<std::int64_t>(limits.max_n, 700));
  RandomCase c;
  c.layer.emplace(dice.pick<std::int64_t>({1, 1, 2}), n, e, heads, kv_heads, head_dim);
  LayerCase& layer = *c.layer;
  reference::LayerProblem& p = layer.problem;
  c.features = {"layer"};
  p.positions = dice.pick<const char*>({"none", "none", "sinusoidal", "learned"});
  if (dice.chance(0.5)) {
    p.window_left = dice.chance(0.6) ? -1 : dice.log_uniform(1, n + 1) - 1, p.window_right = 0;
  }
  if (head_dim % 2 == 0 && dice.chance(0.25)) {
    p.rope = dice.pick<const char*>({"half", "interleaved"});
  } else if (dice.chance(0.2)) {
    p.alibi = true;
  }
  layer.packed = kv_heads == heads && heads * head_dim == e && dice.chance(0.3);
  layer.biases = dice.chance(0.8);
  if (dice.chance(0.15)) layer.precision = DType::bf16, c.features.push_back("layer in bf16");
  if (dice.chance(0.1)) layer.qk_int8 = true, c.features.push_back("layer with int8 scores");
  if (dice.chance(0.2)) layer.row_stride = e + dice.log_uniform(1, 8);
  layer.seed = dice.seed();
  return c;
}

// Sizes: decoding (a few queries, many keys), self-attention (Nq = Nk) or cross (any Nq, Nk).
void draw_sizes(Dice& dice, const DrawLimits& limits, reference::Problem& p, std::vector<std::string>& features) {
  p.batch = dice.pick<std::int64_t>({1, 1, 1, 2, 3});
  p.q_heads = dice.pick<std::int64_t>({1, 2, 3, 4, 8});
  p.kv_heads = dice.divisor(p.q_heads);
  if (p.kv_heads < p.q_heads) features.push_back(p.kv_heads == 1 ? "multi-query" : "grouped-query");
  p.d = dice.chance(0.6) ? dice.pick<std::int64_t>({16, 32, 48, 64, 80, 96, 128, 256}) : dice.log_uniform(1, 512);
  p.dv = dice.chance(0.7) ? p.d : dice.log_uniform(1, 512);
  if (std::max(p.d, p.dv) > 128) features.push_back("D or Dv > 128");
  const double kind = dice.uniform(0, 1);
  if (kind < 0.25) {
    p.nk = dice.log_uniform(1, limits.max_n), p.nq = dice.log_uniform(1, 4);
    features.push_back("decoding");
  } else if (kind < 0.85) {
    p.nq = p.nk = dice.log_uniform(1, limits.max_n);
  } else {
    p.nq = dice.log_uniform(1, limits.max_n), p.nk = dice.log_uniform(1, limits.max_n);
    features.push_back("Nq != Nk");
  }
  if (p.nk > 4096) features.push_back("Nk > 4096");
  if (p.batch > 1) features.push_back("batch");
}

// Within the work limit: fewer queries against the same keys (the keys' schedules stay).
// Additive scores cost the reference Da · (2·D + 1) per pair.
void fit_work(const DrawLimits& limits, std::int64_t additive_da, reference::Problem& p) {
  const double per_pair = additive_da > 0 ? double(additive_da * (2 * p.d + 1) + p.dv) : double(p.d + p.dv);
  const double per_query = double(p.nk) * double(p.batch * p.q_heads) * per_pair;
  p.nq = std::max<std::int64_t>(1, std::min<std::int64_t>(p.nq, static_cast<std::int64_t>(limits.max_work / per_query)));
}

// Which keys each query sees: windows, key lengths, masks, block layouts (none for linear).
void draw_visibility(Dice& dice, reference::Problem& p, AttentionCase& c, bool linear,
                     std::vector<std::string>& features) {
  if (dice.chance(0.4)) {
    if (linear || dice.chance(0.5)) {
      p.window_left = -1, p.window_right = 0;
      features.push_back("causal");
    } else {
      p.window_left = dice.chance(0.15) ? -1 : dice.log_uniform(1, p.nk + 1) - 1;
      p.window_right = dice.chance(0.3) ? -1 : dice.log_uniform(1, p.nk + 1) - 1;
      features.push_back("window");
    }
  }
  if (dice.chance(0.15)) {
    for (std::int64_t b = 0; b < p.batch; ++b) {
      p.key_lengths.push_back(dice.chance(0.2) ? p.nk : dice.log_uniform(1, p.nk + 1) - 1);
    }
    features.push_back("key lengths");
  }
  if (linear) return;
  if (dice.chance(0.08)) {
    c.mask_density = dice.uniform(0.02, 1.0);
    features.push_back("mask");
  }
  if (dice.chance(0.08)) {
    p.block_q = dice.log_uniform(1, 128), p.block_k = dice.log_uniform(1, 128);
    c.block_density = dice.uniform(0.05, 1.0);
    features.push_back("block-sparse");
  }
}

// Scores and weights: normalizer, additive scores, positions, scale.
void draw_scores(Dice& dice, reference::Problem& p, AttentionCase& c, std::vector<std::string>& features) {
  const bool linear = p.normalizer == "linear";
  if (p.normalizer == "sigmoid" && dice.chance(0.5)) p.sigmoid_bias = dice.uniform(-5.0, 2.0);
  if (!linear && dice.chance(0.05)) {
    c.additive_da = dice.log_uniform(1, 64);
    features.push_back("additive");
  }
  if (!linear && c.additive_da == 0 && dice.chance(0.12)) {
    if (p.d % 2 != 0) p.d += p.d < 512 ? 1 : -1;
    p.rope = dice.pick<const char*>({"half", "interleaved"});
    p.rope_base = dice.pick<double>({10000.0, 500000.0, 100.0});
    features.push_back("rope");
  }
  if (!linear && dice.chance(0.1)) {
    p.alibi = true;
    features.push_back("alibi");
  }
  if (!linear && dice.chance(0.1)) {
    c.relative_clip = dice.log_uniform(1, 65) - 1;
    features.push_back("relative bias");
  }
  if (!linear && dice.chance(0.08)) {
    c.bias_dims = dice.pick<int>({2, 3, 4});
    c.bias_hidden = dice.pick<double>({0.0, 0.1, 0.9});
    features.push_back("score bias");
  }
  if (dice.chance(0.1)) {  // a slice of a longer sequence, anywhere around the keys
    p.key_start = dice.log_uniform(1, 100000) - 1;
    p.query_start = p.key_start + dice.log_uniform(1, 2 * (p.nk + p.nq) + 1) - 1 - p.nq;
    features.push_back("positions");
  }
  if (dice.chance(0.15)) {
    p.scale = dice.uniform(0.02, 1.5);
    features.push_back("scale");
  }
}

// S + 1 sorted offsets from 0 to n: S random sequence lengths (some may be 0).
std::vector<std::int64_t> random_offsets(Dice& dice, std::int64_t sequences, std::int64_t n) {
  std::vector<std::int64_t> offsets = {0, n};
  for (std::int64_t s = 1; s < sequences; ++s) offsets.push_back(static_cast<std::int64_t>(dice.uniform(0, double(n) + 1)));
  std::sort(offsets.begin(), offsets.end());
  for (std::int64_t& x : offsets) x = std::min(x, n);
  return offsets;
}

// Soft-capping, sinks, sink keys and packed sequences (after the sizes are final).
void draw_long_context(Dice& dice, reference::Problem& p, AttentionCase& c, std::vector<std::string>& features) {
  const bool linear = p.normalizer == "linear";
  if (!linear && dice.chance(0.06)) {
    p.softcap = dice.uniform(0.5, 30.0);
    features.push_back("softcap");
  }
  if (p.normalizer == "softmax" && dice.chance(0.06)) {
    c.sinks = true;
    features.push_back("sinks");
  }
  if (!linear && dice.chance(0.06)) {
    p.sink_keys = dice.log_uniform(1, p.nk + 1);
    features.push_back("sink keys");
  }
  if (p.key_lengths.empty() && p.block_q == 0 && dice.chance(0.06)) {
    p.batch = 1;
    const std::int64_t sequences = dice.log_uniform(1, 8);
    p.cu_seqlens_q = random_offsets(dice, sequences, p.nq);
    p.cu_seqlens_k = p.nq == p.nk && dice.chance(0.5) ? p.cu_seqlens_q : random_offsets(dice, sequences, p.nk);
    features.push_back("packed sequences");
  }
}

RandomCase draw_attention(Dice& dice, const DrawLimits& limits) {
  RandomCase r;
  AttentionCase& c = r.attention;
  reference::Problem& p = c.problem;
  draw_sizes(dice, limits, p, r.features);
  const double normalizer = dice.uniform(0, 1);
  p.normalizer = normalizer < 0.7 ? "softmax" : normalizer < 0.8 ? "sigmoid" : normalizer < 0.9 ? "relu" : "linear";
  if (p.normalizer != "softmax") r.features.push_back(p.normalizer);
  draw_visibility(dice, p, c, p.normalizer == "linear", r.features);
  draw_scores(dice, p, c, r.features);
  fit_work(limits, c.additive_da, p);
  draw_long_context(dice, p, c, r.features);
  const double dtype = dice.uniform(0, 1);
  c.bf16 = dtype < 0.6 ? Bf16Inputs::none : dtype < 0.85 ? Bf16Inputs::all : Bf16Inputs::keys_values;
  if (c.bf16 != Bf16Inputs::none) r.features.push_back(c.bf16 == Bf16Inputs::all ? "bf16" : "bf16 k, v");
  const double layout = dice.uniform(0, 1);
  c.layout = layout < 0.55 ? Layout::bhnd : layout < 0.75 ? Layout::bnhd : layout < 0.85 ? Layout::bhdn : Layout::padded;
  if (c.layout != Layout::bhnd) r.features.push_back("layout " + to_string(c.layout));
  // The engine's key chunks (white box): linear attention has none; packed sequences plan
  // each sequence themselves.
  const bool chunked = p.normalizer != "linear" && p.cu_seqlens_q.empty();
  if (chunked && dice.chance(0.1)) {
    c.chunk_bytes = dice.log_uniform(4 << 10, 256 << 10);
    r.features.push_back("small key chunks");
  }
  if (chunked && dice.chance(0.05)) {
    c.packed_budget = dice.log_uniform(16 << 10, 1 << 20);
    r.features.push_back("small packed budget");
  }
  if (dice.chance(0.2)) {
    c.magnitude = dice.pick<float>({0.1f, 3.0f});
    r.features.push_back("magnitude");
  }
  if (dice.chance(0.05)) {
    c.drift = dice.pick<float>({-0.3f, -0.01f, 0.01f, 0.3f});
    r.features.push_back("drifting scores");
  }
  if (p.normalizer == "softmax" && p.softcap == 0 && c.additive_da == 0 && dice.chance(0.15)) {
    c.qk_int8 = true;  // on the paths with VNNI alone
    r.features.push_back("int8 scores");
  }
  c.seed = dice.seed();
  return r;
}

}  // namespace

RandomCase draw_case(std::uint64_t seed, std::int64_t index, const DrawLimits& limits) {
  Dice dice(seed, index);
  return dice.chance(0.08) ? draw_layer(dice, limits) : draw_attention(dice, limits);
}

CaseReport run(const RandomCase& c, const RunOn& on) { return c.layer ? run(*c.layer, on) : run(c.attention, on); }

}  // namespace longattn::check
