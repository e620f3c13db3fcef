#include "check/reference_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace longattn::reference {

std::vector<double> alibi_slopes(std::int64_t heads) {
  std::int64_t closest = 1;
  while (closest * 2 <= heads) closest *= 2;
  std::vector<double> slopes;
  for (std::int64_t i = 0; i < closest; ++i) slopes.push_back(std::pow(2.0, -8.0 * double(i + 1) / double(closest)));
  for (std::int64_t i = 0; i < heads - closest; ++i) slopes.push_back(std::pow(2.0, -4.0 * double(2 * i + 1) / double(closest)));
  return slopes;
}

namespace {

// x (n rows of d floats) in double, each row rotated to position first + row when `rope`.
std::vector<double> rotated(const std::vector<double>& x, std::int64_t heads, std::int64_t n, std::int64_t d,
                            std::int64_t first, const Problem& p) {
  std::vector<double> y(x.begin(), x.end());
  if (p.rope.empty()) return y;
  for (std::int64_t row = 0; row < heads * n; ++row) {
    const double pos = double(row % n + first);
    for (std::int64_t i = 0; i < d / 2; ++i) {
      const double angle = pos * std::pow(p.rope_base, -2.0 * double(i) / double(d));
      const std::int64_t a = p.rope == "half" ? i : 2 * i, b = p.rope == "half" ? i + d / 2 : 2 * i + 1;
      const double xa = x[row * d + a], xb = x[row * d + b];
      y[row * d + a] = xa * std::cos(angle) - xb * std::sin(angle);
      y[row * d + b] = xa * std::sin(angle) + xb * std::cos(angle);
    }
  }
  return y;
}

}  // namespace

// Packed sequences, each the problem of its own rows (mask and score bias cut to them).
Result packed_attention(const Problem& p) {
  Result r;
  r.out.assign(p.q_heads * p.nq * p.dv, 0.0);
  r.lse.assign(p.q_heads * p.nq, -std::numeric_limits<double>::infinity());
  for (std::size_t s = 0; s + 1 < p.cu_seqlens_q.size(); ++s) {
    const std::int64_t q0 = p.cu_seqlens_q[s], k0 = p.cu_seqlens_k[s];
    Problem one = p;
    one.cu_seqlens_q.clear(), one.cu_seqlens_k.clear();
    one.nq = p.cu_seqlens_q[s + 1] - q0, one.nk = p.cu_seqlens_k[s + 1] - k0;
    auto rows = [](const std::vector<double>& x, std::int64_t heads, std::int64_t n, std::int64_t first,
                   std::int64_t count, std::int64_t width) {
      std::vector<double> cut;
      for (std::int64_t h = 0; h < heads; ++h) {
        cut.insert(cut.end(), x.begin() + (h * n + first) * width, x.begin() + (h * n + first + count) * width);
      }
      return cut;
    };
    one.q = rows(p.q, p.q_heads, p.nq, q0, one.nq, p.d);
    one.k = rows(p.k, p.kv_heads, p.nk, k0, one.nk, p.d);
    one.v = rows(p.v, p.kv_heads, p.nk, k0, one.nk, p.dv);
    if (!p.mask.empty()) {
      one.mask.clear();
      for (std::int64_t i = 0; i < one.nq; ++i) {
        for (std::int64_t j = 0; j < one.nk; ++j) one.mask.push_back(p.mask[(q0 + i) * p.nk + k0 + j]);
      }
    }
    if (!p.score_bias.empty()) {
      one.score_bias.clear();
      for (std::int64_t h = 0; h < p.q_heads; ++h) {
        for (std::int64_t i = 0; i < one.nq; ++i) {
          for (std::int64_t j = 0; j < one.nk; ++j) {
            one.score_bias.push_back(p.score_bias[(h * p.nq + q0 + i) * p.nk + k0 + j]);
          }
        }
      }
    }
    const Result part = attention(one);
    for (std::int64_t h = 0; h < p.q_heads; ++h) {
      for (std::int64_t i = 0; i < one.nq; ++i) {
        std::copy_n(&part.out[(h * one.nq + i) * p.dv], p.dv, &r.out[(h * p.nq + q0 + i) * p.dv]);
        r.lse[h * p.nq + q0 + i] = part.lse[h * one.nq + i];
      }
    }
    r.max_abs_score = std::max(r.max_abs_score, part.max_abs_score);
    r.visible_pairs += part.visible_pairs;
  }
  return r;
}

Result attention(const Problem& p) {
  if (!p.cu_seqlens_q.empty()) return packed_attention(p);
  Result r;
  const std::int64_t query_start = p.query_start.value_or(p.key_start + p.nk - p.nq);
  const std::vector<double> q = rotated(p.q, p.batch * p.q_heads, p.nq, p.d, query_start, p);
  const std::vector<double> k = rotated(p.k, p.batch * p.kv_heads, p.nk, p.d, p.key_start, p);
  const std::vector<double> slopes = p.alibi ? alibi_slopes(p.q_heads) : std::vector<double>{};
  const std::int64_t clip = (static_cast<std::int64_t>(p.relative_bias.size()) / std::max<std::int64_t>(1, p.q_heads) - 1) / 2;
  r.out.assign(p.batch * p.q_heads * p.nq * p.dv, 0.0);
  r.lse.assign(p.batch * p.q_heads * p.nq, -std::numeric_limits<double>::infinity());
  const double scale = p.scale != 0 ? p.scale : 1.0 / std::sqrt(static_cast<double>(p.d));
  const std::int64_t group = p.q_heads / p.kv_heads;
  // The listed tiles as a set: a 1×1 layout lists a tile per pair.
  const std::set<std::array<std::int64_t, 2>> visible_blocks(p.visible_blocks.begin(), p.visible_blocks.end());
  std::vector<double> s(p.nk);
  std::vector<char> visible(p.nk);
  for (std::int64_t b = 0; b < p.batch; ++b) {
    for (std::int64_t h = 0; h < p.q_heads; ++h) {
      const std::int64_t g = h / group;
      for (std::int64_t i = 0; i < p.nq; ++i) {
        const std::int64_t pos = query_start + i - p.key_start;  // in key indices
        const double* qi = &p.q[((b * p.q_heads + h) * p.nq + i) * p.d];
        double m = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j < p.nk; ++j) {
          visible[j] = (p.window_left < 0 || j >= pos - p.window_left || j < p.sink_keys) &&
                       (p.window_right < 0 || j <= pos + p.window_right) &&
                       (p.key_lengths.empty() || j < p.key_lengths[b]) &&
                       (p.mask.empty() || p.mask[i * p.nk + j] != 0) &&
                       (p.block_q == 0 || visible_blocks.count({i / p.block_q, j / p.block_k}) != 0);
          if (!visible[j]) continue;
          ++r.visible_pairs;
          const double* kj = &p.k[((b * p.kv_heads + g) * p.nk + j) * p.d];
          if (!p.additive_w.empty()) {
            double score = 0;
            for (std::size_t a = 0; a < p.additive_w.size(); ++a) {
              double x = 0;
              for (std::int64_t c = 0; c < p.d; ++c) {
                x += double(p.additive_wq[a * p.d + c]) * qi[c] + double(p.additive_wk[a * p.d + c]) * kj[c];
              }
              score += p.additive_w[a] * std::tanh(x);
            }
            s[j] = score;
          } else {
            const double* qr = &q[((b * p.q_heads + h) * p.nq + i) * p.d];
            const double* kr = &k[((b * p.kv_heads + g) * p.nk + j) * p.d];
            double dot = 0;
            for (std::int64_t c = 0; c < p.d; ++c) dot += qr[c] * kr[c];
            s[j] = scale * dot;
          }
          if (p.softcap > 0) s[j] = p.softcap * std::tanh(s[j] / p.softcap);
          if (p.alibi) s[j] -= slopes[h] * std::abs(double(pos - j));
          if (!p.relative_bias.empty()) {
            s[j] += p.relative_bias[h * (2 * clip + 1) + std::clamp(j - pos, -clip, clip) + clip];
          }
          if (!p.score_bias.empty()) s[j] += p.score_bias[((b * p.q_heads + h) * p.nq + i) * p.nk + j];
          m = std::isnan(m) || std::isnan(s[j]) ? NAN : std::max(m, s[j]);  // IEEE: a NaN score, a NaN max
          if (std::isfinite(s[j])) r.max_abs_score = std::max(r.max_abs_score, std::abs(s[j]));
        }
        const double sink = p.sinks.empty() ? -std::numeric_limits<double>::infinity() : p.sinks[h];
        if (m == -std::numeric_limits<double>::infinity()) {  // sees no key: zeros (lse the sink's)
          r.lse[(b * p.q_heads + h) * p.nq + i] = sink;
          continue;
        }
        double* oi = &r.out[((b * p.q_heads + h) * p.nq + i) * p.dv];
        if (p.normalizer == "linear") {
          // φ = elu + 1 on raw q and k (no scale): Σ_j φ(q)·φ(k_j) v_j / Σ_j φ(q)·φ(k_j).
          auto phi = [](double x) { return x > 0 ? x + 1 : std::exp(x); };
          double denominator = 0;
          for (std::int64_t j = 0; j < p.nk; ++j) {
            if (!visible[j]) continue;
            const double* kj = &p.k[((b * p.kv_heads + g) * p.nk + j) * p.d];
            double w = 0;
            for (std::int64_t c = 0; c < p.d; ++c) w += phi(qi[c]) * phi(kj[c]);
            denominator += w;
            const double* vj = &p.v[((b * p.kv_heads + g) * p.nk + j) * p.dv];
            for (std::int64_t c = 0; c < p.dv; ++c) oi[c] += w * vj[c];
          }
          for (std::int64_t c = 0; c < p.dv; ++c) oi[c] /= denominator;
          continue;
        }
        if (p.normalizer == "sigmoid" || p.normalizer == "relu") {
          const double bias = std::isnan(p.sigmoid_bias) ? -std::log(double(p.nk)) : p.sigmoid_bias;
          for (std::int64_t j = 0; j < p.nk; ++j) {
            if (!visible[j]) continue;
            const double w = p.normalizer == "sigmoid" ? 1.0 / (1.0 + std::exp(-(s[j] + bias)))
                                                       : (s[j] > 0 || std::isnan(s[j]) ? s[j] : 0.0) / double(p.nk);
            const double* vj = &p.v[((b * p.kv_heads + g) * p.nk + j) * p.dv];
            for (std::int64_t c = 0; c < p.dv; ++c) oi[c] += w * vj[c];
          }
          continue;
        }
        m = std::isnan(m) ? m : std::max(m, sink);
        double sum = std::exp(sink - m);  // 0 without a sink
        for (std::int64_t j = 0; j < p.nk; ++j) {
          if (!visible[j]) continue;
          const double e = std::exp(s[j] - m);
          sum += e;
          const double* vj = &p.v[((b * p.kv_heads + g) * p.nk + j) * p.dv];
          for (std::int64_t c = 0; c < p.dv; ++c) oi[c] += e * vj[c];
        }
        for (std::int64_t c = 0; c < p.dv; ++c) oi[c] /= sum;
        r.lse[(b * p.q_heads + h) * p.nq + i] = m + std::log(sum);
      }
    }
  }
  return r;
}

}  // namespace longattn::reference
