#include "tools/report_command.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "longattn/error.hpp"
#include "longattn/version.hpp"
#include "tools/report/measure_point.hpp"
#include "tools/report/measure_schedule.hpp"
#include "tools/report/report_data.hpp"
#include "tools/report/report_writer.hpp"

namespace fs = std::filesystem;

namespace longattn::tools {
namespace {

std::string now(const char* format) {
  const std::time_t t = std::time(nullptr);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, format, std::localtime(&t));
  return buffer;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

// One line redrawn in place on a terminal; a line per round otherwise (logs, CI).
class Progress {
 public:
  Progress() : tty_(isatty(STDERR_FILENO) != 0) {}
  void operator()(int finished, int total, const std::string& what) const {
    const int width = 30, filled = width * finished / total;
    if (tty_) {
      std::fprintf(stderr, "\r[%s%s] %3d/%d points done, %-40s", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), finished, total, what.c_str());
      if (finished == total) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "[%d/%d] %s\n", finished, total, what.c_str());
    }
  }

 private:
  bool tty_;
};

report::Report load_report(const std::string& path) {
  const fs::path file = fs::is_directory(path) ? fs::path(path) / "report.json" : fs::path(path);
  std::ifstream in(file);
  if (!in) throw Error(file.string() + ": cannot open (expected a report folder or its report.json)");
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) throw Error(file.string() + ": not valid JSON");
  return report::report_from_json(j);
}

// What to measure, from the command line: settings, and the methods as one comma-separated list.
struct ReportRequest {
  report::Settings settings;
  std::string methods = "cnn,rnn,full,causal,window,linear,materialized";
  std::string out;
  std::vector<std::string> compare;
  bool quick = false;
};

void add_report_options(CLI::App* cmd, ReportRequest& r) {
  report::Settings& s = r.settings;
  cmd->add_option("--n-min", s.n_min, "Smallest sequence length (powers of two from here)")->check(CLI::PositiveNumber);
  cmd->add_option("--n-max", s.n_max, "Largest sequence length")->check(CLI::PositiveNumber);
  cmd->add_option("--d", s.d, "Model dimension of every method")->check(CLI::PositiveNumber);
  cmd->add_option("--heads", s.heads, "Attention heads (must divide --d)")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", s.threads, "Worker threads of every method")->check(CLI::PositiveNumber);
  cmd->add_option("--kernel", s.kernel, "CNN kernel taps")->check(CLI::PositiveNumber);
  cmd->add_option("--window", s.window, "Truncated attention: keys within ±window")->check(CLI::NonNegativeNumber);
  cmd->add_option("--rounds", s.rounds, "Rounds per point at least, each in a fresh process (3 once its time budget is spent)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-rounds", s.max_rounds, "Rounds per point at most")->check(CLI::PositiveNumber);
  cmd->add_option("--precision", s.precision, "Measure until the median's 95 % interval is within ± this share")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--round-seconds", s.round_seconds, "Timed runs of a round add up to at least this")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--point-seconds", s.point_seconds, "Time budget per point (seconds of timed runs): no further rounds after it")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--fit-min", s.fit_min, "Fit slopes over points with n >= this")->check(CLI::PositiveNumber);
  cmd->add_option("--materialized-max-bytes", s.materialized_max_bytes,
                  "Largest n×n score matrix the materialized baseline may allocate");
  cmd->add_option("--methods", r.methods, "Comma-separated: cnn, rnn, lstm, full, causal, window, linear, materialized");
  cmd->add_flag("--quick", r.quick, "Smoke run: n = 256 … 2048, one round of a few runs per point");
  cmd->add_option("--out", r.out, "Report folder (default reports/scaling-<date-time>)");
  cmd->add_option("--compare", r.compare, "A B: compare two report folders instead of measuring")->expected(2);
}

// The settings a run measures with, checked before anything runs.
report::Settings checked_settings(const ReportRequest& request) {
  report::Settings s = request.settings;
  if (request.quick) {
    s.n_min = 256, s.n_max = 2048, s.fit_min = 256;
    s.rounds = s.max_rounds = 1, s.round_seconds = 0.02;
  }
  s.methods.clear();
  std::stringstream list(request.methods);
  for (std::string m; std::getline(list, m, ',');) {
    report::theory_of(m);  // an unknown method is an error before anything runs
    s.methods.push_back(m);
  }
  if (s.d % s.heads != 0) {
    throw Error("heads: expected a divisor of d = " + std::to_string(s.d) + ", got " + std::to_string(s.heads));
  }
  if (s.n_min > s.n_max) throw Error("n-min: expected <= n-max");
  if (s.rounds > s.max_rounds) throw Error("rounds: expected <= max-rounds");
  return s;
}

void compare_reports(const ReportRequest& request) {
  const report::Report a = load_report(request.compare[0]), b = load_report(request.compare[1]);
  const fs::path dir = request.out.empty() ? fs::path("reports/compare-" + now("%Y%m%d-%H%M%S")) : fs::path(request.out);
  report::write_comparison(a, request.compare[0], b, request.compare[1], dir);
  std::printf("Comparison written to %s/summary.md (also compare.json, time.svg, memory.svg)\n", fs::absolute(dir).c_str());
}

void measure_report(const ReportRequest& request) {
  report::Report r;
  r.settings = checked_settings(request);
  r.settings.version = LONGATTN_VERSION_STRING;
  r.settings.date = now("%Y-%m-%d %H:%M");
  r.settings.cpu = cpu_model();
  report::measure_machine_in_child(r.settings);

  const auto start = std::chrono::steady_clock::now();
  r.points = report::measure_points(r.settings, Progress());
  const fs::path dir = request.out.empty() ? fs::path("reports/scaling-" + now("%Y%m%d-%H%M%S")) : fs::path(request.out);
  report::write_report(r, dir);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s", report::crossover_sentences(r).c_str());
  std::printf("Measured %zu points in %.0f s. Report written to %s/summary.md "
              "(also points.csv, report.json, time.svg, memory.svg)\n",
              r.points.size(), seconds, fs::absolute(dir).c_str());
}

// What `report-round` measures: one round of a point, for the report that started it.
struct RoundRequest {
  report::Settings settings;
  std::string method;
  std::int64_t n = 0;
  double seconds = 0;
  int result_fd = -1;
};

// The process every round of a report runs in; hidden from --help, since only `report` calls it.
void add_round_command(CLI::App& app, Actions actions) {
  auto request = std::make_shared<RoundRequest>();
  CLI::App* cmd = app.add_subcommand("report-round", "One round of a report's point (started by `report`)");
  cmd->group("");
  report::Settings& s = request->settings;
  cmd->add_option("--method", request->method)->required();
  cmd->add_option("--n", request->n)->required()->check(CLI::PositiveNumber);
  cmd->add_option("--seconds", request->seconds)->required()->check(CLI::NonNegativeNumber);
  cmd->add_option("--result-fd", request->result_fd)->required()->check(CLI::NonNegativeNumber);
  cmd->add_option("--d", s.d)->check(CLI::PositiveNumber);
  cmd->add_option("--heads", s.heads)->check(CLI::PositiveNumber);
  cmd->add_option("--kernel", s.kernel)->check(CLI::PositiveNumber);
  cmd->add_option("--window", s.window)->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", s.threads)->check(CLI::PositiveNumber);
  on_parsed(cmd, actions, [=] {
    report::measure_round_here(request->settings, request->method, request->n, request->seconds, request->result_fd);
  });
}

}  // namespace

void add_report_command(CLI::App& app, Actions actions) {
  add_round_command(app, actions);
  auto request = std::make_shared<ReportRequest>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Complexity-scaling report: CNN vs RNN vs self-attention as n grows (time, memory, fits, plots)");
  add_report_options(cmd, *request);
  on_parsed(cmd, actions, [=] { request->compare.empty() ? measure_report(*request) : compare_reports(*request); });
}

}  // namespace longattn::tools
