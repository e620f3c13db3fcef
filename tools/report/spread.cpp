#include "tools/report/spread.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "bench/measure.hpp"

namespace longattn::report {
namespace {

// P(X <= k) for X ~ binomial(n, ½), term by term in logs so that thousands of runs do not
// underflow.
double binomial_half_cdf(int n, int k) {
  double sum = 0;
  for (int i = 0; i <= k; ++i) {
    sum += std::exp(std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) - n * std::log(2.0));
  }
  return sum;
}

// The x with P(Z > x) = upper for a standard normal Z, by bisection on erfc.
double normal_upper_quantile(double upper) {
  double lo = 0, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(mid / std::sqrt(2.0)) > upper ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

double student_t_975(int dof) {
  static constexpr std::array<double, 30> table = {
      12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
      2.120,  2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (dof < 1) return INFINITY;
  if (dof <= 30) return table[dof - 1];
  const double z = 1.959964;
  return z + (z * z * z + z) / (4.0 * dof);  // Cornish-Fisher, within 0.002 beyond 30
}

Spread spread_of(std::vector<double> samples) {
  Spread s;
  s.count = static_cast<int>(samples.size());
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.median = bench::median(samples);
  s.low = s.high = s.median;
  const int n = s.count;
  if (n >= 6) {
    int rank = 1;  // 1-based rank of the lower end; the upper end is n + 1 − rank
    while (rank < n / 2 && 2 * binomial_half_cdf(n, rank) <= 0.05) ++rank;
    s.low = samples[rank - 1];
    s.high = samples[n - rank];
  } else if (n >= 2) {
    std::vector<double> logs(samples.size());
    std::transform(samples.begin(), samples.end(), logs.begin(), [](double t) { return std::log(t); });
    const double mean = std::accumulate(logs.begin(), logs.end(), 0.0) / n;
    double squares = 0;
    for (double l : logs) squares += (l - mean) * (l - mean);
    const double half = student_t_975(n - 1) * std::sqrt(squares / (n - 1) / n);
    s.low = std::min(s.median, std::exp(mean - half));
    s.high = std::max(s.median, std::exp(mean + half));
  }
  return s;
}

double relative_half_width(const Spread& s) {
  if (s.median <= 0) return INFINITY;
  return std::max(s.high / s.median - 1, 1 - s.low / s.median);
}

RatioInterval ratio_interval(const Spread& a, const Spread& b, double widening) {
  RatioInterval r;
  if (a.median <= 0 || b.median <= 0) return r;
  r.ratio = b.median / a.median;
  if (a.count < 2 || b.count < 2) {
    r.low = r.high = r.ratio;
    return r;
  }
  // B/A is low when B is low and A is high, and the other way round.
  const double down = std::hypot(std::log(a.high / a.median), std::log(b.median / b.low));
  const double up = std::hypot(std::log(a.median / a.low), std::log(b.high / b.median));
  r.low = r.ratio * std::exp(-widening * down);
  r.high = r.ratio * std::exp(widening * up);
  r.significant = r.low > 1 || r.high < 1;
  return r;
}

double simultaneous_widening(int comparisons) {
  if (comparisons <= 1) return 1;
  return normal_upper_quantile(0.025 / comparisons) / normal_upper_quantile(0.025);
}

}  // namespace longattn::report
