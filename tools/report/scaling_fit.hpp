// How cost grows with n: log-log slopes and the crossover between two methods.
#pragma once

#include <optional>
#include <vector>

namespace longattn::report {

// Least-squares slope of log(y) against log(x) (1 for linear growth, 2 for quadratic) and the
// half-width of its 95 % interval (Student t on the fit's residuals; 0 with two points, which a
// line fits exactly). Needs two points with positive x and y; returns nullopt otherwise.
struct SlopeFit {
  double slope = 0, half_width = 0;
};
std::optional<SlopeFit> fit_loglog_slope(const std::vector<double>& x, const std::vector<double>& y);

// The n at which method a stops being cheaper than b (first n where a_cost > b_cost),
// interpolated between the two measured points on log-log axes. nullopt when the order never
// changes over the points given (same n for both lists).
std::optional<double> crossover(const std::vector<double>& n, const std::vector<double>& a_cost,
                                const std::vector<double>& b_cost);

}  // namespace longattn::report
