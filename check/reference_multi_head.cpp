#include "check/reference_multi_head.hpp"

#include <cmath>

#include "check/reference_attention.hpp"

namespace longattn::reference {
namespace {

// out[r][o] = Σ_i in[r][i] w[o][i] + b[o] for `rows` rows, W [outs, ins].
std::vector<double> linear(const std::vector<double>& in, std::int64_t rows, std::int64_t ins,
                           const std::vector<float>& w, const std::vector<float>& b, std::int64_t outs) {
  std::vector<double> out(rows * outs);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t o = 0; o < outs; ++o) {
      double sum = b.empty() ? 0.0 : b[o];
      for (std::int64_t i = 0; i < ins; ++i) sum += in[r * ins + i] * double(w[o * ins + i]);
      out[r * outs + o] = sum;
    }
  return out;
}

// [B, N, H·D] → [B, H, N, D]
std::vector<double> split_heads(const std::vector<double>& x, std::int64_t B, std::int64_t N, std::int64_t H, std::int64_t D) {
  std::vector<double> out(x.size());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t d = 0; d < D; ++d) out[((b * H + h) * N + n) * D + d] = x[(b * N + n) * H * D + h * D + d];
  return out;
}

}  // namespace

std::vector<double> multi_head(const LayerProblem& p) {
  const std::int64_t B = p.batch, N = p.n, E = p.e, D = p.head_dim;
  std::vector<double> x(p.x.begin(), p.x.end());
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t c = 0; c < E; ++c) {
        double pe = 0;
        if (p.positions == "learned") pe = p.table[n * E + c];
        if (p.positions == "sinusoidal") {
          const double angle = double(n) / std::pow(10000.0, double(2 * (c / 2)) / double(E));
          pe = c % 2 == 0 ? std::sin(angle) : std::cos(angle);
        }
        x[(b * N + n) * E + c] += pe;
      }
  Problem a;
  a.batch = B, a.q_heads = p.heads, a.kv_heads = p.kv_heads, a.nq = a.nk = N, a.d = a.dv = D;
  a.q = split_heads(linear(x, B * N, E, p.wq, p.bq, p.heads * D), B, N, p.heads, D);
  a.k = split_heads(linear(x, B * N, E, p.wk, p.bk, p.kv_heads * D), B, N, p.kv_heads, D);
  a.v = split_heads(linear(x, B * N, E, p.wv, p.bv, p.kv_heads * D), B, N, p.kv_heads, D);
  a.window_left = p.window_left, a.window_right = p.window_right;
  a.rope = p.rope;
  a.alibi = p.alibi;
  const Result heads = attention(a);
  std::vector<double> joined(B * N * p.heads * D);  // [B, H, N, D] → [B, N, H·D]
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < p.heads; ++h)
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t d = 0; d < D; ++d)
          joined[(b * N + n) * p.heads * D + h * D + d] = heads.out[((b * p.heads + h) * N + n) * D + d];
  return linear(joined, B * N, p.heads * D, p.wo, p.bo, E);
}

}  // namespace longattn::reference
