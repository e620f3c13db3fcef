#include "tools/report/report_writer.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "longattn/error.hpp"
#include "tools/report/scaling_fit.hpp"
#include "tools/report/svg_plot.hpp"

namespace fs = std::filesystem;

namespace longattn::report {
namespace {

std::string fmt(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string seconds_text(double s) {
  if (s >= 1) return fmt("%.3g s", s);
  if (s >= 1e-3) return fmt("%.3g ms", s * 1e3);
  return fmt("%.3g µs", s * 1e6);
}

std::string bytes_text(double b) {
  if (b >= 1 << 30) return fmt("%.3g GiB", b / (1 << 30));
  if (b >= 1 << 20) return fmt("%.3g MiB", b / (1 << 20));
  return fmt("%.3g KiB", b / 1024);
}

std::string slope_text(const std::optional<double>& s) { return s ? fmt("%.2f", *s) : "—"; }

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw Error(path.string() + ": cannot write");
}

std::vector<Series> series_of(const Report& r, double Point::*field, bool dashed, const std::string& suffix,
                              bool with_slope) {
  std::vector<Series> out;
  int color = 0;
  for (const std::string& m : r.settings.methods) {
    Series s{theory_of(m).short_label + suffix, {}, {}, color++, dashed};
    for (const Point* p : r.measured(m)) {
      s.x.push_back(double(p->n));
      s.y.push_back(std::max(p->*field, field == &Point::memory_bytes ? 4096.0 : 1e-9));
    }
    if (with_slope) {
      const auto slope = field == &Point::seconds ? r.time_slope(m) : r.memory_slope(m);
      s.name += " (slope " + slope_text(slope) + ")";
    }
    if (!s.x.empty()) out.push_back(s);
  }
  return out;
}

std::string settings_text(const Settings& s) {
  return "d = " + std::to_string(s.d) + " (" + std::to_string(s.heads) + " head(s) of " +
         std::to_string(s.d / s.heads) + "), CNN k = " + std::to_string(s.kernel) + ", window ±" +
         std::to_string(s.window) + ", " + std::to_string(s.threads) + " thread(s), n = " + std::to_string(s.n_min) +
         " … " + std::to_string(s.n_max) + ", median of ≥ " + std::to_string(s.repeats) + " runs; " + s.isa +
         " on " + s.cpu + " (fp32 FMA peak " + fmt("%.0f", s.peak_gflops) + " GFLOP/s measured); longattn " +
         s.version + ", " + s.date;
}

}  // namespace

std::string crossover_sentences(const Report& r) {
  std::string text;
  const auto& methods = r.settings.methods;
  auto has = [&](const std::string& m) { return std::find(methods.begin(), methods.end(), m) != methods.end(); };
  for (const std::string& attention : {std::string("full"), std::string("causal"), std::string("window"),
                                        std::string("linear"), std::string("materialized")}) {
    for (const std::string& other : {std::string("rnn"), std::string("lstm"), std::string("cnn")}) {
      if (!has(attention) || !has(other)) continue;
      std::vector<double> n, a, b;
      const auto pa = r.measured(attention), pb = r.measured(other);
      for (const Point* x : pa)
        for (const Point* y : pb)
          if (x->n == y->n) n.push_back(double(x->n)), a.push_back(x->seconds), b.push_back(y->seconds);
      if (n.empty()) continue;
      const std::string A = theory_of(attention).label, B = theory_of(other).label;
      if (const auto at = crossover(n, a, b)) {
        text += "- " + A + " is faster than the " + B + " up to n ≈ " + fmt("%.0f", *at) + " and slower beyond it.\n";
      } else if (a.front() > b.front() && a.back() > b.back()) {
        text += "- " + A + " is slower than the " + B + " at every n measured (" + fmt("%.0f", n.front()) + " … " +
                fmt("%.0f", n.back()) + ").\n";
      } else {
        text += "- " + A + " stays faster than the " + B + " up to n = " + fmt("%.0f", n.back()) +
                ", the largest n measured.\n";
      }
    }
  }
  return text;
}

void write_report(const Report& r, const fs::path& dir) {
  fs::create_directories(dir);
  const Settings& s = r.settings;
  write_file(dir / "report.json", to_json(r).dump(1) + "\n");

  std::string csv = "method,n,measured,seconds,gflops,memory_bytes,note\n";
  for (const Point& p : r.points) {
    csv += p.method + "," + std::to_string(p.n) + "," + (p.measured ? "1" : "0") + "," + fmt("%.9g", p.seconds) + "," +
           fmt("%.6g", p.seconds > 0 ? p.flops / p.seconds * 1e-9 : 0) + "," + fmt("%.0f", p.memory_bytes) + ",\"" +
           p.note + "\"\n";
  }
  write_file(dir / "points.csv", csv);

  write_file(dir / "time.svg", loglog_svg("Time per layer vs sequence length (log-log)", "sequence length n",
                                          "time (median)", "s", series_of(r, &Point::seconds, false, "", true)));
  write_file(dir / "memory.svg", loglog_svg("Peak memory of the step vs sequence length (log-log)", "sequence length n",
                                            "peak memory of the step", "B",
                                            series_of(r, &Point::memory_bytes, false, "", true)));

  std::string md = "# Complexity scaling: convolution, recurrence and self-attention\n\n" + settings_text(s) + ".\n\n";
  md += "## The seeds' table, measured\n\nSlopes are log-log least-squares fits over n ≥ " + std::to_string(s.fit_min) +
        " (theory in brackets).\n\n";
  md += "| method | complexity per layer | sequential operations | maximum path length | time slope | memory slope "
        "| time at largest n | GFLOP/s | memory |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const std::string& m : s.methods) {
    const MethodTheory& t = theory_of(m);
    const auto points = r.measured(m);
    const Point* last = points.empty() ? nullptr : points.back();
    md += "| " + t.label + " | " + t.complexity + " | " + t.sequential_ops + " | " + t.max_path + " | " +
          slope_text(r.time_slope(m)) + " (" + fmt("%g", t.time_exponent) + ") | " + slope_text(r.memory_slope(m)) +
          " (" + fmt("%g", t.memory_exponent) + ") | " +
          (last ? seconds_text(last->seconds) + " at n = " + std::to_string(last->n) : "—") + " | " +
          (last ? fmt("%.1f", last->flops / last->seconds * 1e-9) : "—") + " | " +
          (last ? bytes_text(last->memory_bytes) : "—") + " |\n";
  }
  md += "\n## Crossovers\n\n" + crossover_sentences(r);
  md += "\n## Plots\n\n![time](time.svg)\n\n![memory](memory.svg)\n\n## Every point\n\n| n |";
  for (const std::string& m : s.methods) md += " " + m + " |";
  md += "\n| --- |";
  for (std::size_t i = 0; i < s.methods.size(); ++i) md += " --- |";
  md += "\n";
  std::set<std::int64_t> ns;
  for (const Point& p : r.points) ns.insert(p.n);
  for (std::int64_t n : ns) {
    md += "| " + std::to_string(n) + " |";
    for (const std::string& m : s.methods) {
      std::string cell = " — ";
      for (const Point& p : r.points) {
        if (p.method == m && p.n == n) cell = p.measured ? " " + seconds_text(p.seconds) + ", " + bytes_text(p.memory_bytes) + " " : " " + p.note + " ";
      }
      md += cell + "|";
    }
    md += "\n";
  }
  write_file(dir / "summary.md", md);
}

void write_comparison(const Report& a, const std::string& a_name, const Report& b, const std::string& b_name,
                      const fs::path& dir) {
  fs::create_directories(dir);
  std::string md = "# Scaling reports compared\n\n- A (solid lines): `" + a_name + "`: " + settings_text(a.settings) +
                   "\n- B (dashed lines): `" + b_name + "`: " + settings_text(b.settings) + "\n\n";
  // Settings in which they differ: stated, not hidden.
  std::vector<std::string> differences;
  auto differ = [&](const std::string& what, const std::string& x, const std::string& y) {
    if (x != y) differences.push_back(what + ": A " + x + ", B " + y);
  };
  const Settings &sa = a.settings, &sb = b.settings;
  differ("d", std::to_string(sa.d), std::to_string(sb.d));
  differ("heads", std::to_string(sa.heads), std::to_string(sb.heads));
  differ("threads", std::to_string(sa.threads), std::to_string(sb.threads));
  differ("CNN kernel", std::to_string(sa.kernel), std::to_string(sb.kernel));
  differ("window", std::to_string(sa.window), std::to_string(sb.window));
  differ("ISA", sa.isa, sb.isa);
  differ("CPU", sa.cpu, sb.cpu);
  differ("longattn version", sa.version, sb.version);
  std::string ma, mb;
  for (const auto& m : sa.methods) ma += m + " ";
  for (const auto& m : sb.methods) mb += m + " ";
  differ("methods", ma, mb);
  md += "## Settings that differ\n\n";
  if (differences.empty()) md += "None: the two runs measured the same things.\n";
  for (const auto& d : differences) md += "- " + d + "\n";

  md += "\n## Slopes side by side (time; memory)\n\n| method | A | B |\n| --- | --- | --- |\n";
  std::vector<std::string> methods = sa.methods;
  for (const auto& m : sb.methods)
    if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
  for (const auto& m : methods) {
    md += "| " + theory_of(m).label + " | " + slope_text(a.time_slope(m)) + "; " + slope_text(a.memory_slope(m)) + " | " +
          slope_text(b.time_slope(m)) + "; " + slope_text(b.memory_slope(m)) + " |\n";
  }
  md += "\n## Time of B / time of A\n\n| method |";
  std::set<std::int64_t> ns;
  for (const Point& p : a.points) ns.insert(p.n);
  for (std::int64_t n : ns) md += " " + std::to_string(n) + " |";
  md += "\n| --- |";
  for (std::size_t i = 0; i < ns.size(); ++i) md += " --- |";
  md += "\n";
  for (const auto& m : methods) {
    md += "| " + m + " |";
    for (std::int64_t n : ns) {
      double ta = 0, tb = 0;
      for (const Point* p : a.measured(m)) if (p->n == n) ta = p->seconds;
      for (const Point* p : b.measured(m)) if (p->n == n) tb = p->seconds;
      md += ta > 0 && tb > 0 ? " " + fmt("%.2f", tb / ta) + " |" : " — |";
    }
    md += "\n";
  }
  md += "\n## Crossovers\n\nA:\n" + crossover_sentences(a) + "\nB:\n" + crossover_sentences(b) +
        "\n## Plots\n\n![time](time.svg)\n\n![memory](memory.svg)\n";
  write_file(dir / "summary.md", md);

  for (auto [file, field, unit, title] :
       {std::tuple{"time.svg", &Point::seconds, "s", "Time vs n: A solid, B dashed"},
        std::tuple{"memory.svg", &Point::memory_bytes, "B", "Peak memory vs n: A solid, B dashed"}}) {
    auto series = series_of(a, field, false, " [A]", false);
    const auto second = series_of(b, field, true, " [B]", false);
    series.insert(series.end(), second.begin(), second.end());
    write_file(dir / file, loglog_svg(title, "sequence length n", unit == std::string("s") ? "time (median)" : "peak memory",
                                      unit, series));
  }
  nlohmann::json j = {{"a", {{"path", a_name}, {"report", to_json(a)}}}, {"b", {{"path", b_name}, {"report", to_json(b)}}},
                      {"differences", differences}};
  write_file(dir / "comparison.json", j.dump(1) + "\n");
}

}  // namespace longattn::report
