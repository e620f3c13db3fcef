// How far a measured figure can move: the confidence interval of a median time from repeated
// runs, and the interval of a ratio of two such medians.
#pragma once

#include <optional>
#include <vector>

namespace longattn::report {

// The median of `count` values with its 95 % confidence interval [low, high].
struct Spread {
  double median = 0, low = 0, high = 0;
  int count = 0;
};

// From six values on, the distribution-free interval of the median (order statistics whose
// ranks a binomial(count, ½) puts around it with ≥ 95 % probability). With two to five, the
// Student-t interval of the mean log value, widened to hold the median. One value has no
// interval: low = high = median.
Spread spread_of(std::vector<double> values);

// The larger of the interval's two sides, relative to the median: 0.03 for "within ±3 %".
double relative_half_width(const Spread& s);

// B / A with an interval from both spreads: each side's log distance from its median, added in
// quadrature, scaled by `widening` (1 for 95 %; see simultaneous_widening). `significant`
// when the interval excludes 1; never when either spread has fewer than two values.
struct RatioInterval {
  double ratio = 1, low = 1, high = 1;
  bool significant = false;
};
RatioInterval ratio_interval(const Spread& a, const Spread& b, double widening = 1);

// How much wider than a 95 % interval each of `comparisons` intervals must be for all of them
// to hold together with 95 % probability (Bonferroni): z(1 − 0.025 / m) / z(0.975).
double simultaneous_widening(int comparisons);

// The two-sided 97.5 % quantile of Student's t with `dof` degrees of freedom.
double student_t_975(int dof);

}  // namespace longattn::report
