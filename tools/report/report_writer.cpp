#include "tools/report/report_writer.hpp"

#include <set>

#include "tools/report/report_text.hpp"

namespace fs = std::filesystem;

namespace longattn::report {
namespace {

std::string csv_of(const Report& r) {
  std::string csv =
      "method,n,measured,seconds,min_seconds,low_seconds,high_seconds,runs,rounds,gflops,memory_bytes,rss_resolved,"
      "allocated_bytes,scratch_bytes,contended_rounds,budget_ran_out,note\n";
  for (const Point& p : r.points) {
    csv += p.method + "," + std::to_string(p.n) + "," + (p.measured ? "1" : "0") + "," + fmt("%.9g", p.seconds) + "," +
           fmt("%.9g", p.min_seconds) + "," + fmt("%.9g", p.spread.low) + "," + fmt("%.9g", p.spread.high) + "," +
           std::to_string(p.runs) + "," + std::to_string(p.rounds) + "," +
           fmt("%.6g", p.seconds > 0 ? p.flops / p.seconds * 1e-9 : 0) + "," + fmt("%.0f", p.memory_bytes) + "," +
           (rss_resolved(p) ? "1" : "0") + "," + fmt("%.0f", p.allocated_bytes) + "," + fmt("%.0f", p.scratch_bytes) +
           "," + std::to_string(contended_rounds(p)) + "," + (p.budget_ran_out ? "1" : "0") + ",\"" + p.note + "\"\n";
  }
  return csv;
}

// The step's memory in words: what the heap gave it and what peak RSS saw, where RSS resolves it.
std::string memory_text(const Point& p) {
  std::string text = p.allocated_bytes >= 0 ? bytes_text(p.allocated_bytes) + " allocated" : "";
  const std::string rss = rss_resolved(p) ? bytes_text(p.memory_bytes) + " RSS"
                                          : "RSS < " + bytes_text(kRssResolutionBytes) + " (below resolution)";
  return text.empty() ? rss : text + ", " + rss;
}

std::string seeds_table(const Report& r) {
  const Settings& s = r.settings;
  std::string md = "## The seeds' table, measured\n\nSlopes are log-log least-squares fits over n ≥ " +
                   std::to_string(s.fit_min) +
                   " with their 95 % intervals (theory in brackets); memory slopes fit the heap bytes each step "
                   "allocated.\n\n";
  md += "| method | complexity per layer | sequential operations | maximum path length | time slope | memory slope "
        "| time at largest n | GFLOP/s | memory |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const std::string& m : s.methods) {
    const MethodTheory& t = theory_of(m);
    const auto points = r.measured(m);
    const Point* last = points.empty() ? nullptr : points.back();
    md += "| " + t.label + " | " + t.complexity + " | " + t.sequential_ops + " | " + t.max_path + " | " +
          slope_text(r.time_slope(m)) + " (" + fmt("%g", t.time_exponent) + ") | " + slope_text(r.memory_slope(m)) +
          " (" + fmt("%g", t.memory_exponent) + ") | " +
          (last ? seconds_text(last->seconds) + " at n = " + std::to_string(last->n) + " (" + spread_text(*last) + ")"
                : "—") +
          " | " + (last ? fmt("%.1f", last->flops / last->seconds * 1e-9) : "—") + " | " +
          (last ? memory_text(*last) : "—") + " |\n";
  }
  return md;
}

std::string every_point(const Report& r) {
  std::string md = "## Every point\n\nMedian time, its 95 % interval and runs; memory.\n\n| method | n | time | "
                   "interval | GFLOP/s | memory | note |\n| --- | --- | --- | --- | --- | --- | --- |\n";
  for (const std::string& m : r.settings.methods) {
    for (const Point& p : r.points) {
      if (p.method != m) continue;
      md += "| " + m + " | " + std::to_string(p.n) + " | ";
      md += p.measured ? seconds_text(p.seconds) + " | " + spread_text(p) + " | " +
                             fmt("%.1f", p.seconds > 0 ? p.flops / p.seconds * 1e-9 : 0) + " | " + memory_text(p)
                       : " | | | ";
      md += " | " + p.note + " |\n";
    }
  }
  return md;
}

}  // namespace

void write_report(const Report& r, const fs::path& dir) {
  fs::create_directories(dir);
  write_file(dir / "report.json", to_json(r).dump(1) + "\n");
  write_file(dir / "points.csv", csv_of(r));
  write_file(dir / "time.svg", loglog_svg("Time per layer vs sequence length (log-log)", "sequence length n",
                                          "time (median, 95 % interval)", "s", time_series(r, false, "", true)));
  write_file(dir / "memory.svg",
             loglog_svg("Memory of the step vs sequence length (log-log)", "sequence length n",
                        "heap bytes allocated (solid), peak RSS (dashed)", "B", memory_series(r, false, "", true, true)));

  std::string md = "# Complexity scaling: convolution, recurrence and self-attention\n\n" + settings_text(r.settings) +
                   ".\n\n" + seeds_table(r);
  md += "\n## Crossovers\n\nThe range in brackets is where the crossover lies given every point's interval.\n\n" +
        crossover_sentences(r);
  md += "\n## Plots\n\n![time](time.svg)\n\n![memory](memory.svg)\n\nPeak RSS is plotted only where it grew by at "
        "least " +
        bytes_text(kRssResolutionBytes) +
        ": below that, the step's blocks came from pages already resident and RSS does not measure them.\n\n" +
        every_point(r);
  write_file(dir / "summary.md", md);
}

}  // namespace longattn::report
