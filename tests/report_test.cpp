// The scaling report's arithmetic and writers on synthetic timings, where the answer is known.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "tools/report/crossovers.hpp"
#include "tools/report/report_data.hpp"
#include "tools/report/report_writer.hpp"
#include "tools/report/scaling_fit.hpp"
#include "tools/report/spread.hpp"
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

// A measured point whose rounds ran `jitter` apart around `seconds`.
Point point(const std::string& method, std::int64_t n, double seconds, double flops, double allocated,
            double resident, double jitter = 0.01) {
  Point p;
  p.method = method, p.n = n, p.measured = true, p.flops = flops;
  p.round_medians = {seconds * (1 - jitter), seconds, seconds * (1 + jitter)};
  p.spread = spread_of(p.round_medians);
  p.seconds = p.spread.median, p.min_seconds = seconds * (1 - 2 * jitter);
  p.rounds = 3, p.runs = 30;
  p.allocated_bytes = allocated, p.memory_bytes = resident;
  return p;
}

// A report whose methods grow exactly as theory says: time = c · n^exponent.
Report synthetic_report() {
  Report r;
  r.settings.methods = {"rnn", "full", "materialized"};
  r.settings.fit_min = 1024;
  for (std::int64_t n = 256; n <= 65536; n *= 2) {
    const double x = double(n);
    r.points.push_back(point("rnn", n, 2e-6 * x, 4.0 * x * 64 * 64, 512.0 * x, 512.0 * x));
    r.points.push_back(point("full", n, 1e-9 * x * x, 256.0 * x * x, 1024.0 * x, 1024.0 * x));
    if (n <= 16384) {
      r.points.push_back(point("materialized", n, 2e-9 * x * x, 256.0 * x * x, 4.0 * x * x, 4.0 * x * x));
    } else {
      Point skipped;
      skipped.method = "materialized", skipped.n = n, skipped.note = "skipped: too big";
      r.points.push_back(skipped);
    }
  }
  return r;
}

// `report` with every round median scaled by a log-normal factor of spread `sigma`.
Report jittered(Report report, double sigma, std::mt19937& random) {
  std::normal_distribution<double> noise(0, sigma);
  for (Point& p : report.points) {
    if (!p.measured) continue;
    for (double& t : p.round_medians) t *= std::exp(noise(random));
    p.spread = spread_of(p.round_medians);
    p.seconds = p.spread.median;
  }
  return report;
}

}  // namespace

TEST_CASE("log-log slopes recover the exponent of a power law, with an interval that holds it") {
  std::vector<double> n, linear, quadratic, noisy;
  for (double x = 256; x <= 65536; x *= 2) {
    n.push_back(x);
    linear.push_back(3e-7 * x);
    quadratic.push_back(5e-10 * x * x);
    noisy.push_back(5e-10 * x * x * (1 + 0.03 * std::sin(x)));
  }
  CHECK(fit_loglog_slope(n, linear)->slope == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(fit_loglog_slope(n, quadratic)->slope == doctest::Approx(2.0).epsilon(1e-12));
  CHECK(fit_loglog_slope(n, quadratic)->half_width == doctest::Approx(0).epsilon(1e-9));
  const SlopeFit fit = *fit_loglog_slope(n, noisy);
  CHECK(fit.half_width > 0.001);
  CHECK(fit.half_width < 0.05);
  CHECK(std::abs(fit.slope - 2.0) < fit.half_width);
  CHECK_FALSE(fit_loglog_slope({1024}, {1.0}).has_value());
  CHECK_FALSE(fit_loglog_slope({1024, 2048}, {0.0, 0.0}).has_value());
}

TEST_CASE("the interval of a median: order statistics from six values, Student t below") {
  const Spread ten = spread_of({10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
  CHECK(ten.median == 5.5);
  CHECK(ten.low == 2);  // ranks 2 and 9 hold the median with 97.9 % probability; 3 and 8 with 89 %
  CHECK(ten.high == 9);
  CHECK(ten.count == 10);

  const Spread three = spread_of({1.0, 1.02, 0.98});
  CHECK(three.median == 1.0);
  CHECK(three.low < 0.98);  // t(2) = 4.3 widens three values' range
  CHECK(three.high > 1.02);
  CHECK(relative_half_width(three) == doctest::Approx(0.0497).epsilon(0.01));

  const Spread one = spread_of({2.0});
  CHECK((one.low == 2.0 && one.high == 2.0 && one.count == 1));
  CHECK_FALSE(ratio_interval(one, one).significant);

  std::vector<double> many(5000);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = 1 + 1e-4 * double(i);
  const Spread lots = spread_of(many);  // thousands of values: no underflow, a narrow interval
  CHECK(lots.low < lots.median);
  CHECK(relative_half_width(lots) < 0.01);
}

TEST_CASE("rounds on a busy host leave a point's spread while enough quiet rounds remain") {
  Point p = point("full", 1024, 1.0, 1, 1, 1);
  p.round_medians = {1.0, 1.5, 1.01, 1.6, 0.99, 1.02};  // two rounds slowed by a neighbour
  p.round_contended = {false, true, false, true, false, false};
  p.rounds = 6;
  const Spread quiet = quiet_spread(p);
  CHECK(quiet.count == 4);
  CHECK(quiet.median == doctest::Approx(1.005));
  CHECK(quiet.high < 1.5);
  CHECK_FALSE(measured_on_busy_host(p));

  p.round_contended = {true, true, false, true, false, true};  // two quiet rounds: no interval of their own
  CHECK(quiet_spread(p).count == 6);
  CHECK(measured_on_busy_host(p));

  Report r;
  r.points = {p};
  const Report back = report_from_json(to_json(r));
  CHECK(back.points[0].round_contended == p.round_contended);
  CHECK(measured_on_busy_host(back.points[0]));
}

TEST_CASE("ratios of equal timings stay within noise across many comparisons; real differences do not") {
  CHECK(simultaneous_widening(1) == 1);
  CHECK(simultaneous_widening(63) == doctest::Approx(1.71).epsilon(0.01));

  // 1000 A/A comparisons of 54 points, each point's rounds 3 % apart: the simultaneous
  // intervals promise to flag a difference in 5 % of them; intervals of three rounds centred on
  // their median deliver about 94 %.
  std::mt19937 random(7);
  const Report base = synthetic_report();
  int flagged = 0;
  for (int trial = 0; trial < 1000; ++trial) {
    const Report a = jittered(base, 0.03, random), b = jittered(base, 0.03, random);
    int significant = 0, compared = 0;
    for (const Point& pa : a.points) {
      for (const Point& pb : b.points) {
        if (pa.measured && pb.measured && pa.method == pb.method && pa.n == pb.n) ++compared;
      }
    }
    for (const Point& pa : a.points) {
      for (const Point& pb : b.points) {
        if (!pa.measured || !pb.measured || pa.method != pb.method || pa.n != pb.n) continue;
        significant += ratio_interval(pa.spread, pb.spread, simultaneous_widening(compared)).significant;
      }
    }
    flagged += significant > 0;
  }
  CHECK(flagged <= 70);

  // Twice as slow with the same noise is a difference every time.
  const Spread a = spread_of({1.0, 1.03, 0.97}), b = spread_of({2.0, 2.06, 1.94});
  const RatioInterval r = ratio_interval(a, b, simultaneous_widening(63));
  CHECK(r.significant);
  CHECK(r.ratio == doctest::Approx(2.0));
  CHECK(r.low < 2.0);
  CHECK(r.high > 2.0);
}

TEST_CASE("the crossover of a quadratic and a linear cost is where they meet, with a range") {
  // 1e-9 n² = 2e-6 n at n = 2000: between the measured 1024 and 2048.
  std::vector<double> n, quad, lin;
  for (double x = 256; x <= 65536; x *= 2) n.push_back(x), quad.push_back(1e-9 * x * x), lin.push_back(2e-6 * x);
  const auto at = crossover(n, quad, lin);
  REQUIRE(at.has_value());
  CHECK(*at == doctest::Approx(2000).epsilon(1e-9));  // exact for power laws on log axes
  CHECK_FALSE(crossover(n, lin, lin).has_value());

  const auto found = crossovers(synthetic_report());
  REQUIRE(found.size() == 2);  // full and materialized against the RNN
  const Crossover& full = found[0];
  CHECK(full.attention == "full");
  CHECK(full.at == doctest::Approx(2000).epsilon(1e-9));
  CHECK(full.earliest < 2000);
  CHECK(full.latest > 2000);
  CHECK(full.latest < 4096);
  CHECK(sentence(full).find("up to n ≈ 2000 (19") != std::string::npos);
}

TEST_CASE("a report's fits, table, crossovers, CSV, JSON and plots") {
  const Report r = synthetic_report();
  CHECK(r.time_slope("full")->slope == doctest::Approx(2.0));
  CHECK(r.time_slope("rnn")->slope == doctest::Approx(1.0));
  CHECK(r.memory_slope("full")->slope == doctest::Approx(1.0));
  CHECK(r.memory_slope("materialized")->slope == doctest::Approx(2.0));
  CHECK(r.measured("materialized").size() == 7);

  const fs::path dir = fs::temp_directory_path() / "longattn_report_test";
  fs::remove_all(dir);
  write_report(r, dir);
  const std::string md = read(dir / "summary.md");
  CHECK(md.find("| self-attention, full (longattn) | O(n²·d) | O(1) | O(1) | 2.00 ± 0.00 (2) | 1.00 ± 0.00 (1) |") !=
        std::string::npos);
  CHECK(md.find("is faster than the RNN (Elman, tanh) up to n ≈ 2000 (") != std::string::npos);
  CHECK(md.find("skipped: too big") != std::string::npos);
  CHECK(md.find("±2.5 %, 3 round(s), 30 runs") != std::string::npos);  // t(2) · 1 % / √3
  // 256 × 512 B of the RNN's RSS is below what peak RSS resolves: said, and not plotted.
  CHECK(md.find("RSS < 1 MiB (below resolution)") != std::string::npos);
  const std::string svg_memory = read(dir / "memory.svg");
  CHECK(svg_memory.find("(slope 2.00 ± 0.00)") != std::string::npos);
  CHECK(svg_memory.find("RNN, peak RSS") != std::string::npos);  // resolved from n = 2048 on
  CHECK(read(dir / "points.csv").rfind("method,n,measured,seconds,min_seconds,low_seconds,high_seconds,runs,", 0) == 0);
  const std::string svg_time = read(dir / "time.svg");
  CHECK(svg_time.find("<polyline") != std::string::npos);
  CHECK(svg_time.find("class=\"interval\"") != std::string::npos);  // every point's error bar

  // report.json reads back to the same report, which is what --compare relies on.
  const Report back = report_from_json(nlohmann::json::parse(read(dir / "report.json")));
  REQUIRE(back.points.size() == r.points.size());
  CHECK(back.time_slope("full")->slope == doctest::Approx(2.0));
  CHECK(back.points[1].spread.low == doctest::Approx(r.points[1].spread.low));
  CHECK(back.points[1].allocated_bytes == r.points[1].allocated_bytes);
  fs::remove_all(dir);
}

TEST_CASE("--compare opens with its verdict: noise, or each difference beyond it") {
  const fs::path dir = fs::temp_directory_path() / "longattn_compare_test";
  fs::remove_all(dir);
  std::mt19937 random(11);
  const Report a = synthetic_report(), again = jittered(a, 0.01, random);
  write_comparison(a, "a", again, "again", dir / "same");
  CHECK(read(dir / "same" / "summary.md").rfind("# Scaling reports compared\n\nNo difference beyond run-to-run noise.\n", 0) == 0);

  Report faster = a;
  faster.settings.threads = 2;
  for (Point& p : faster.points) {
    if (p.method != "full") continue;
    for (double& t : p.round_medians) t /= 2;
    p.spread = spread_of(p.round_medians), p.seconds = p.spread.median;
  }
  write_comparison(a, "a", faster, "b", dir / "faster");
  const std::string md = read(dir / "faster" / "summary.md");
  CHECK(md.find("9 differences beyond run-to-run noise:\n\n- full at n = 256: B/A 0.50 (") != std::string::npos);
  CHECK(md.find("threads: A 1, B 2") != std::string::npos);  // mismatched settings are stated
  CHECK(md.find("| full | **0.50 (") != std::string::npos);
  CHECK(md.find("| rnn | 1.00 (") != std::string::npos);
  CHECK(read(dir / "faster" / "time.svg").find("stroke-dasharray") != std::string::npos);

  const auto j = nlohmann::json::parse(read(dir / "faster" / "compare.json"));
  int significant = 0;
  for (const auto& p : j.at("points")) {
    CHECK(p.at("low").get<double>() <= p.at("ratio").get<double>());
    CHECK(p.at("high").get<double>() >= p.at("ratio").get<double>());
    significant += p.at("significant").get<bool>();
  }
  CHECK(significant == 9);
  CHECK(j.at("crossovers").at("b").size() == 2);

  // A difference at a point whose B kept a round measured on a busy host is listed apart.
  Report busy = again;
  for (Point& p : busy.points) {
    if (p.method == "rnn" && p.n == 1024) {
      for (double& t : p.round_medians) t *= 1.5;
      p.round_contended.assign(p.round_medians.size(), true);
      p.spread = quiet_spread(p), p.seconds = p.spread.median;
    }
  }
  write_comparison(a, "a", busy, "busy", dir / "busy");
  const std::string busy_md = read(dir / "busy" / "summary.md");
  CHECK(busy_md.rfind("# Scaling reports compared\n\nNo difference beyond run-to-run noise.\n\nBeyond noise at points "
                      "measured while the host was busy (†), not counted:\n\n- rnn at n = 1024: B/A 1.5",
                      0) == 0);
  CHECK(busy_md.find("** †") != std::string::npos);
  CHECK(busy_md.find("(A: 0 of 25 points, B: 1 of 25 points)") != std::string::npos);

  // Most points measured on a busy host: no verdict either way.
  for (Point& p : busy.points) p.round_contended.assign(p.round_medians.size(), true);
  write_comparison(a, "a", busy, "busy", dir / "all_busy");
  CHECK(read(dir / "all_busy" / "summary.md")
            .rfind("# Scaling reports compared\n\nCannot judge: 25 of 25 points were measured while the host was busy.\n", 0) == 0);
  fs::remove_all(dir);
}

TEST_CASE("reports written before points carried their spread still read and compare") {
  const auto old = nlohmann::json::parse(R"({"settings": {"n_min": 256, "n_max": 512, "d": 64, "heads": 1,
    "kernel": 3, "window": 256, "threads": 2, "repeats": 3, "fit_min": 256, "materialized_max_bytes": 1,
    "methods": ["full"], "isa": "avx2", "cpu": "x", "version": "0", "date": "d", "peak_gflops": 1},
    "points": [{"method": "full", "n": 256, "measured": true, "note": "", "seconds": 0.001, "flops": 1,
                "memory_bytes": 4096}]})");
  const Report r = report_from_json(old);
  REQUIRE(r.points.size() == 1);
  CHECK(r.points[0].spread.count == 1);
  CHECK(r.points[0].allocated_bytes == -1);
  CHECK_FALSE(ratio_interval(r.points[0].spread, r.points[0].spread).significant);
}
