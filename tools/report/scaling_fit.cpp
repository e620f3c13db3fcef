#include "tools/report/scaling_fit.hpp"

#include <cmath>
#include <cstddef>

#include "tools/report/spread.hpp"

namespace longattn::report {

std::optional<SlopeFit> fit_loglog_slope(const std::vector<double>& x, const std::vector<double>& y) {
  std::vector<double> lx, ly;
  for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
    if (x[i] > 0 && y[i] > 0) {
      lx.push_back(std::log(x[i]));
      ly.push_back(std::log(y[i]));
    }
  }
  if (lx.size() < 2) return std::nullopt;
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < lx.size(); ++i) mx += lx[i], my += ly[i];
  mx /= double(lx.size());
  my /= double(ly.size());
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < lx.size(); ++i) {
    sxy += (lx[i] - mx) * (ly[i] - my);
    sxx += (lx[i] - mx) * (lx[i] - mx);
  }
  if (sxx == 0) return std::nullopt;
  SlopeFit fit{sxy / sxx, 0};
  const std::size_t k = lx.size();
  if (k > 2) {
    double residuals = 0;
    for (std::size_t i = 0; i < k; ++i) {
      const double e = ly[i] - my - fit.slope * (lx[i] - mx);
      residuals += e * e;
    }
    fit.half_width = student_t_975(static_cast<int>(k) - 2) * std::sqrt(residuals / double(k - 2) / sxx);
  }
  return fit;
}

std::optional<double> crossover(const std::vector<double>& n, const std::vector<double>& a_cost,
                                const std::vector<double>& b_cost) {
  for (std::size_t i = 1; i < n.size(); ++i) {
    const bool before = a_cost[i - 1] <= b_cost[i - 1], after = a_cost[i] > b_cost[i];
    if (!(before && after)) continue;
    // log(a/b) crosses zero between the two points; interpolate in log n.
    const double r0 = std::log(a_cost[i - 1] / b_cost[i - 1]), r1 = std::log(a_cost[i] / b_cost[i]);
    const double t = r0 / (r0 - r1);
    return std::exp(std::log(n[i - 1]) + t * (std::log(n[i]) - std::log(n[i - 1])));
  }
  return std::nullopt;
}

}  // namespace longattn::report
