// The scaling report's arithmetic and writers on synthetic timings, where the answer is known.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tools/report/report_data.hpp"
#include "tools/report/report_writer.hpp"
#include "tools/report/scaling_fit.hpp"
#include "tools/report/svg_plot.hpp"

namespace fs = std::filesystem;
using namespace longattn::report;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A report whose methods grow exactly as theory says: time = c · n^exponent.
Report synthetic_report() {
  Report r;
  r.settings.methods = {"rnn", "full", "materialized"};
  r.settings.fit_min = 1024;
  for (std::int64_t n = 256; n <= 65536; n *= 2) {
    const double x = double(n);
    r.points.push_back({"rnn", n, true, "", 2e-6 * x, 4.0 * x * 64 * 64, 512.0 * x});
    r.points.push_back({"full", n, true, "", 1e-9 * x * x, 256.0 * x * x, 1024.0 * x});
    if (n <= 16384) {
      r.points.push_back({"materialized", n, true, "", 2e-9 * x * x, 256.0 * x * x, 4.0 * x * x});
    } else {
      r.points.push_back({"materialized", n, false, "skipped: too big", 0, 0, 0});
    }
  }
  return r;
}

}  // namespace

TEST_CASE("log-log slopes recover the exponent of a power law") {
  std::vector<double> n, linear, quadratic, noisy;
  for (double x = 256; x <= 65536; x *= 2) {
    n.push_back(x);
    linear.push_back(3e-7 * x);
    quadratic.push_back(5e-10 * x * x);
    noisy.push_back(5e-10 * x * x * (1 + 0.03 * std::sin(x)));
  }
  CHECK(*loglog_slope(n, linear) == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(*loglog_slope(n, quadratic) == doctest::Approx(2.0).epsilon(1e-12));
  CHECK(*loglog_slope(n, noisy) == doctest::Approx(2.0).epsilon(0.02));
  CHECK_FALSE(loglog_slope({1024}, {1.0}).has_value());
  CHECK_FALSE(loglog_slope({1024, 2048}, {0.0, 0.0}).has_value());
}

TEST_CASE("the crossover of a quadratic and a linear cost is where they meet") {
  // 1e-9 n² = 2e-6 n at n = 2000: between the measured 1024 and 2048.
  std::vector<double> n, quad, lin;
  for (double x = 256; x <= 65536; x *= 2) n.push_back(x), quad.push_back(1e-9 * x * x), lin.push_back(2e-6 * x);
  const auto at = crossover(n, quad, lin);
  REQUIRE(at.has_value());
  CHECK(*at == doctest::Approx(2000).epsilon(1e-9));  // exact for power laws on log axes
  CHECK_FALSE(crossover(n, lin, lin).has_value());
}

TEST_CASE("a report's fits, table, crossovers, CSV, JSON and plots") {
  const Report r = synthetic_report();
  CHECK(*r.time_slope("full") == doctest::Approx(2.0));
  CHECK(*r.time_slope("rnn") == doctest::Approx(1.0));
  CHECK(*r.memory_slope("full") == doctest::Approx(1.0));
  CHECK(*r.memory_slope("materialized") == doctest::Approx(2.0));
  CHECK(r.measured("materialized").size() == 7);

  const fs::path dir = fs::temp_directory_path() / "longattn_report_test";
  fs::remove_all(dir);
  write_report(r, dir);
  const std::string md = read(dir / "summary.md");
  CHECK(md.find("| self-attention, full (longattn) | O(n²·d) | O(1) | O(1) | 2.00 (2) | 1.00 (1) |") != std::string::npos);
  CHECK(md.find("is faster than the RNN (Elman, tanh) up to n ≈ 2000 and slower beyond it") != std::string::npos);
  CHECK(md.find("skipped: too big") != std::string::npos);
  CHECK(read(dir / "points.csv").rfind("method,n,measured,seconds,gflops,memory_bytes,note\n", 0) == 0);
  CHECK(read(dir / "time.svg").find("<polyline") != std::string::npos);
  CHECK(read(dir / "memory.svg").find("(slope 2.00)") != std::string::npos);

  // report.json reads back to the same report, which is what --compare relies on.
  const Report back = report_from_json(nlohmann::json::parse(read(dir / "report.json")));
  CHECK(back.points.size() == r.points.size());
  CHECK(*back.time_slope("full") == doctest::Approx(2.0));

  Report faster = r;
  faster.settings.threads = 1;
  for (Point& p : faster.points) p.seconds /= 2;
  const fs::path cmp = dir / "compare";
  write_comparison(r, "a", faster, "b", cmp);
  const std::string cmd = read(cmp / "summary.md");
  CHECK(cmd.find("threads: A 2, B 1") != std::string::npos);  // mismatched settings are stated
  CHECK(cmd.find("| full | 0.50 |") != std::string::npos);
  CHECK(read(cmp / "time.svg").find("stroke-dasharray") != std::string::npos);
  fs::remove_all(dir);
}
