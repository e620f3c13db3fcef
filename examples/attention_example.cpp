// A small application of longattn: causal attention over a long random sequence, checked
// against a direct computation of a few rows, with the throughput it reached; the same on bf16
// inputs; then the multi-head layer with RoPE on weights laid out as PyTorch's nn.Linear stores them.
#include <longattn/longattn.hpp>
#include <longattn/version.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  const std::int64_t B = 1, H = 4, N = 4096, D = 64;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  std::vector<float> q(B * H * N * D), k(q.size()), v(q.size()), out(q.size());
  for (auto* t : {&q, &k, &v})
    for (float& x : *t) x = normal(rng);

  longattn::AttentionOptions options;
  options.window = longattn::Window::causal();
  const auto start = std::chrono::steady_clock::now();
  const longattn::AttentionStats stats = longattn::attention(
      longattn::bhnd<const float>(q.data(), B, H, N, D), longattn::bhnd<const float>(k.data(), B, H, N, D),
      longattn::bhnd<const float>(v.data(), B, H, N, D), longattn::bhnd(out.data(), B, H, N, D), options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Direct softmax for a few query rows of head 0.
  double max_error = 0;
  for (std::int64_t i : {0L, 1L, 777L, N - 1}) {
    std::vector<double> s(i + 1);
    double m = -INFINITY, sum = 0;
    for (std::int64_t j = 0; j <= i; ++j) {
      double dot = 0;
      for (std::int64_t d = 0; d < D; ++d) dot += double(q[i * D + d]) * k[j * D + d];
      s[j] = dot / std::sqrt(double(D));
      m = std::max(m, s[j]);
    }
    for (double& x : s) sum += (x = std::exp(x - m));
    for (std::int64_t d = 0; d < D; ++d) {
      double o = 0;
      for (std::int64_t j = 0; j <= i; ++j) o += s[j] / sum * v[j * D + d];
      max_error = std::max(max_error, std::abs(o - out[i * D + d]));
    }
  }
  std::printf("longattn %s on %s: causal attention B=%lld H=%lld N=%lld D=%lld in %.3f s, %.1f GFLOP/s, "
              "max error %.2e\n",
              LONGATTN_VERSION_STRING, longattn::to_string(stats.isa).c_str(), (long long)B, (long long)H,
              (long long)N, (long long)D, seconds, stats.flops / seconds * 1e-9, max_error);
  if (max_error >= 1e-4) return 1;

  // The same inputs stored as bf16 (half the memory): only their rounding moves the output.
  std::vector<longattn::bf16> q16(q.size()), k16(k.size()), v16(v.size());
  for (std::size_t i = 0; i < q.size(); ++i) {
    q16[i] = longattn::bf16(q[i]), k16[i] = longattn::bf16(k[i]), v16[i] = longattn::bf16(v[i]);
  }
  std::vector<float> out16(out.size());
  longattn::attention(longattn::bhnd<const longattn::bf16>(q16.data(), B, H, N, D),
                      longattn::bhnd<const longattn::bf16>(k16.data(), B, H, N, D),
                      longattn::bhnd<const longattn::bf16>(v16.data(), B, H, N, D),
                      longattn::bhnd(out16.data(), B, H, N, D), options);
  double bf16_difference = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    bf16_difference = std::max(bf16_difference, double(std::abs(out16[i] - out[i])));
  }
  std::printf("the same on bf16 inputs: max difference from fp32 %.2e\n", bf16_difference);
  if (bf16_difference >= 5e-2) return 1;

  // The layer: y = MHA(x), E = 64, 4 query heads sharing 2 kv heads, causal, RoPE.
  const std::int64_t E = 64, L = 1000;
  std::vector<float> wq(E * E), wkv(E / 2 * E), wo(E * E), x(L * E), y(L * E);
  for (auto* t : {&wq, &wkv, &wo, &x})
    for (float& w : *t) w = normal(rng) / 8.0f;
  longattn::MultiHeadConfig config;
  config.embed_dim = E, config.heads = 4, config.kv_heads = 2;
  config.attention.window = longattn::Window::causal();
  config.attention.rope.pairing = longattn::RopePairing::half;
  longattn::MultiHeadWeights weights;
  weights.wq = {wq.data(), {E, E}, {E, 1}};
  weights.wk = weights.wv = {wkv.data(), {E / 2, E}, {E, 1}};
  weights.wo = {wo.data(), {E, E}, {E, 1}};
  longattn::MultiHeadSelfAttention layer(config, weights);
  const longattn::MultiHeadStats layer_stats = layer.forward({x.data(), {1, L, E}, {L * E, E, 1}}, {y.data(), {1, L, E}, {L * E, E, 1}});
  bool finite = true;
  for (float value : y) finite = finite && std::isfinite(value);
  std::printf("multi-head layer N=%lld E=%lld: projections %.4f s, attention %.4f s, output %.4f s\n", (long long)L,
              (long long)E, layer_stats.projection_seconds, layer_stats.attention_seconds, layer_stats.output_seconds);
  return finite ? 0 : 1;
}
