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

// One line redrawn in place on a terminal; a line per point otherwise (logs, CI).
class Progress {
 public:
  explicit Progress(int total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void step(const std::string& what) {
    ++done_;
    const int width = 30, filled = width * done_ / total_;
    if (tty_) {
      std::fprintf(stderr, "\r[%s%s] %3d/%d %-40s", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), done_, total_, what.c_str());
      if (done_ == total_) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "[%d/%d] %s\n", done_, total_, what.c_str());
    }
  }

 private:
  int total_, done_ = 0;
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

}  // namespace

void add_report_command(CLI::App& app, Actions actions) {
  auto s = std::make_shared<report::Settings>();
  auto out = std::make_shared<std::string>();
  auto methods = std::make_shared<std::string>("cnn,rnn,full,causal,window,linear,materialized");
  auto compare = std::make_shared<std::vector<std::string>>();
  auto quick = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "report", "Complexity-scaling report: CNN vs RNN vs self-attention as n grows (time, memory, fits, plots)");
  cmd->add_option("--n-min", s->n_min, "Smallest sequence length (powers of two from here)")->check(CLI::PositiveNumber);
  cmd->add_option("--n-max", s->n_max, "Largest sequence length")->check(CLI::PositiveNumber);
  cmd->add_option("--d", s->d, "Model dimension of every method")->check(CLI::PositiveNumber);
  cmd->add_option("--heads", s->heads, "Attention heads (must divide --d)")->check(CLI::PositiveNumber);
  cmd->add_option("--threads", s->threads, "Worker threads of every method")->check(CLI::PositiveNumber);
  cmd->add_option("--kernel", s->kernel, "CNN kernel taps")->check(CLI::PositiveNumber);
  cmd->add_option("--window", s->window, "Truncated attention: keys within ±window")->check(CLI::NonNegativeNumber);
  cmd->add_option("--repeats", s->repeats, "Timed runs per point (median; more for quick points)")->check(CLI::PositiveNumber);
  cmd->add_option("--fit-min", s->fit_min, "Fit slopes over points with n >= this")->check(CLI::PositiveNumber);
  cmd->add_option("--materialized-max-bytes", s->materialized_max_bytes,
                  "Largest n×n score matrix the materialized baseline may allocate");
  cmd->add_option("--methods", *methods, "Comma-separated: cnn, rnn, lstm, full, causal, window, linear, materialized");
  cmd->add_flag("--quick", *quick, "Smoke run: n = 256 … 2048, one timed run per point");
  cmd->add_option("--out", *out, "Report folder (default reports/scaling-<date-time>)");
  cmd->add_option("--compare", *compare, "A B: compare two report folders instead of measuring")->expected(2);
  on_parsed(cmd, actions, [=] {
    if (!compare->empty()) {
      const report::Report a = load_report((*compare)[0]), b = load_report((*compare)[1]);
      const fs::path dir = out->empty() ? fs::path("reports/compare-" + now("%Y%m%d-%H%M%S")) : fs::path(*out);
      report::write_comparison(a, (*compare)[0], b, (*compare)[1], dir);
      std::printf("Comparison written to %s/summary.md (plots time.svg, memory.svg)\n", fs::absolute(dir).c_str());
      return;
    }
    report::Report r;
    r.settings = *s;
    if (*quick) {
      r.settings.n_min = 256, r.settings.n_max = 2048, r.settings.repeats = 1, r.settings.fit_min = 256;
    }
    r.settings.methods.clear();
    std::stringstream list(*methods);
    for (std::string m; std::getline(list, m, ',');) {
      report::theory_of(m);  // an unknown method is an error before anything runs
      r.settings.methods.push_back(m);
    }
    if (r.settings.d % r.settings.heads != 0) {
      throw Error("heads: expected a divisor of d = " + std::to_string(r.settings.d) + ", got " +
                  std::to_string(r.settings.heads));
    }
    if (r.settings.n_min > r.settings.n_max) throw Error("n-min: expected <= n-max");
    r.settings.version = LONGATTN_VERSION_STRING;
    r.settings.date = now("%Y-%m-%d %H:%M");
    r.settings.cpu = cpu_model();
    r.settings.peak_gflops = report::peak_gflops_in_child(r.settings.threads, r.settings.isa);

    std::vector<std::int64_t> ns;
    for (std::int64_t n = r.settings.n_min; n <= r.settings.n_max; n *= 2) ns.push_back(n);
    Progress progress(static_cast<int>(ns.size() * r.settings.methods.size()));
    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t n : ns) {
      for (const std::string& m : r.settings.methods) {
        r.points.push_back(report::measure_point(r.settings, m, n));
        progress.step(m + " n=" + std::to_string(n));
      }
    }
    const fs::path dir = out->empty() ? fs::path("reports/scaling-" + now("%Y%m%d-%H%M%S")) : fs::path(*out);
    report::write_report(r, dir);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s", report::crossover_sentences(r).c_str());
    std::printf("Measured %zu points in %.0f s. Report written to %s/summary.md "
                "(also points.csv, report.json, time.svg, memory.svg)\n",
                r.points.size(), seconds, fs::absolute(dir).c_str());
  });
}

}  // namespace longattn::tools
