// A small application of longattn: causal attention over a long random sequence, checked
// against a direct computation of a few rows, with the throughput it reached.
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
  return max_error < 1e-4 ? 0 : 1;
}
