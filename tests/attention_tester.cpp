#include "tests/attention_tester.hpp"

#include <doctest/doctest.h>

namespace longattn::testing {

bool within_tolerance(const std::vector<float>& actual, const std::vector<double>& expected,
                      double max_abs_score, double max_abs_value, double rel) {
  const check::Comparison c = check::compare(actual, expected, max_abs_score, max_abs_value, rel);
  if (!c.passed) MESSAGE(c.failure);
  return c.passed;
}

void AttentionTester::check() const {
  const check::CaseReport report = check::run(c_, {runnable_isas(), {1, 2}});
  INFO(report.description);
  for (const std::string& failure : report.failures) FAIL_CHECK(failure);
  CHECK(report.runs > 0);
}

}  // namespace longattn::testing
