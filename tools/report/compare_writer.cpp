// `report --compare A B`: which differences between two reports are beyond run-to-run noise.
#include <algorithm>
#include <set>
#include <tuple>

#include "tools/report/report_text.hpp"
#include "tools/report/report_writer.hpp"
#include "tools/report/spread.hpp"

namespace fs = std::filesystem;

namespace longattn::report {
namespace {

struct Compared {
  std::string method;
  std::int64_t n;
  RatioInterval ratio;
  bool contended;  // either point was measured on a busy host
};

const Point* find(const Report& r, const std::string& method, std::int64_t n) {
  for (const Point* p : r.measured(method))
    if (p->n == n) return p;
  return nullptr;
}

std::vector<std::string> union_of(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> out = a;
  for (const auto& m : b)
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  return out;
}

// Every (method, n) both measured, with intervals that hold together: each is widened so that
// all of them contain their true ratio with 95 % probability.
std::vector<Compared> compare_points(const Report& a, const Report& b, const std::vector<std::string>& methods) {
  std::vector<std::tuple<std::string, std::int64_t, const Point*, const Point*>> pairs;
  for (const auto& m : methods)
    for (const Point* pa : a.measured(m))
      if (const Point* pb = find(b, m, pa->n)) pairs.emplace_back(m, pa->n, pa, pb);
  const double widening = simultaneous_widening(static_cast<int>(pairs.size()));
  std::vector<Compared> out;
  for (const auto& [m, n, pa, pb] : pairs) {
    out.push_back({m, n, ratio_interval(pa->spread, pb->spread, widening), measured_on_busy_host(*pa) || measured_on_busy_host(*pb)});
  }
  return out;
}

// How many points of a report were measured on a busy host.
std::string busy_line(const Report& r, const std::string& name) {
  int busy = 0, measured = 0;
  for (const Point& p : r.points) busy += measured_on_busy_host(p), measured += p.measured;
  return name + ": " + std::to_string(busy) + " of " + std::to_string(measured) + " points";
}

std::string ratio_text(const RatioInterval& r) {
  return fmt("%.2f", r.ratio) + " (" + fmt("%.2f", r.low) + "–" + fmt("%.2f", r.high) + ")";
}

std::vector<std::string> setting_differences(const Settings& sa, const Settings& sb) {
  std::vector<std::string> differences;
  auto differ = [&](const std::string& what, const std::string& x, const std::string& y) {
    if (x != y) differences.push_back(what + ": A " + x + ", B " + y);
  };
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
  return differences;
}

// The opening lines: differences at points measured on a quiet host count; those at points
// either report measured on a busy host are listed apart, since the host may be what moved;
// and when most points were measured on a busy host, the reports cannot be judged at all.
std::string verdict(const std::vector<Compared>& points) {
  std::vector<const Compared*> quiet, busy;
  for (const Compared& c : points)
    if (c.ratio.significant) (c.contended ? busy : quiet).push_back(&c);
  auto list = [](const std::vector<const Compared*>& cs) {
    std::string md;
    for (const Compared* c : cs) md += "- " + c->method + " at n = " + std::to_string(c->n) + ": B/A " + ratio_text(c->ratio) + "\n";
    return md;
  };
  const auto contended = std::count_if(points.begin(), points.end(), [](const Compared& c) { return c.contended; });
  std::string md;
  if (2 * contended > static_cast<std::ptrdiff_t>(points.size())) {
    md = "Cannot judge: " + std::to_string(contended) + " of " + std::to_string(points.size()) +
         " points were measured while the host was busy.\n";
  } else if (quiet.empty()) {
    md = "No difference beyond run-to-run noise.\n";
  } else {
    md = std::to_string(quiet.size()) + " difference" + (quiet.size() == 1 ? "" : "s") + " beyond run-to-run noise:\n\n" +
         list(quiet);
  }
  if (!busy.empty()) md += "\nBeyond noise at points measured while the host was busy (†), not counted:\n\n" + list(busy);
  return md;
}

std::string ratio_table(const Report& a, const std::vector<std::string>& methods, const std::vector<Compared>& points) {
  std::set<std::int64_t> ns;
  for (const Point& p : a.points) ns.insert(p.n);
  std::string md = "| method |";
  for (std::int64_t n : ns) md += " " + std::to_string(n) + " |";
  md += "\n| --- |";
  for (std::size_t i = 0; i < ns.size(); ++i) md += " --- |";
  md += "\n";
  for (const auto& m : methods) {
    md += "| " + m + " |";
    for (std::int64_t n : ns) {
      const auto c = std::find_if(points.begin(), points.end(), [&](const Compared& x) { return x.method == m && x.n == n; });
      if (c == points.end()) md += " — |";
      else if (c->ratio.significant) md += " **" + ratio_text(c->ratio) + "**" + (c->contended ? " †" : "") + " |";
      else md += " " + ratio_text(c->ratio) + (c->contended ? " †" : "") + " |";
    }
    md += "\n";
  }
  return md;
}

nlohmann::json compare_json(const Report& a, const std::string& a_name, const Report& b, const std::string& b_name,
                            const std::vector<Compared>& points, const std::vector<std::string>& differences) {
  nlohmann::json j = {{"points", nlohmann::json::array()},
                      {"crossovers", {{"a", nlohmann::json::array()}, {"b", nlohmann::json::array()}}},
                      {"settings_that_differ", differences},
                      {"a", {{"path", a_name}, {"report", to_json(a)}}},
                      {"b", {{"path", b_name}, {"report", to_json(b)}}}};
  for (const Compared& c : points) {
    j["points"].push_back({{"method", c.method}, {"n", c.n}, {"ratio", c.ratio.ratio}, {"low", c.ratio.low},
                           {"high", c.ratio.high}, {"significant", c.ratio.significant}, {"contended", c.contended}});
  }
  for (const Crossover& c : crossovers(a)) j["crossovers"]["a"].push_back(to_json(c));
  for (const Crossover& c : crossovers(b)) j["crossovers"]["b"].push_back(to_json(c));
  return j;
}

void write_plots(const Report& a, const Report& b, const fs::path& dir) {
  auto time = time_series(a, false, " [A]", false), time_b = time_series(b, true, " [B]", false);
  time.insert(time.end(), time_b.begin(), time_b.end());
  write_file(dir / "time.svg", loglog_svg("Time vs n: A solid, B dashed", "sequence length n",
                                          "time (median, 95 % interval)", "s", time));
  auto memory = memory_series(a, false, " [A]", false, false), memory_b = memory_series(b, true, " [B]", false, false);
  memory.insert(memory.end(), memory_b.begin(), memory_b.end());
  write_file(dir / "memory.svg",
             loglog_svg("Memory vs n: A solid, B dashed", "sequence length n", "heap bytes allocated", "B", memory));
}

}  // namespace

void write_comparison(const Report& a, const std::string& a_name, const Report& b, const std::string& b_name,
                      const fs::path& dir) {
  fs::create_directories(dir);
  const std::vector<std::string> methods = union_of(a.settings.methods, b.settings.methods);
  const std::vector<Compared> points = compare_points(a, b, methods);
  const std::vector<std::string> differences = setting_differences(a.settings, b.settings);

  std::string md = "# Scaling reports compared\n\n" + verdict(points) + "\n- A (solid lines): `" + a_name +
                   "`: " + settings_text(a.settings) + "\n- B (dashed lines): `" + b_name +
                   "`: " + settings_text(b.settings) + "\n\n## Settings that differ\n\n";
  if (differences.empty()) md += "None: the two runs measured the same things.\n";
  for (const auto& d : differences) md += "- " + d + "\n";
  md += "\n## Time of B / time of A\n\nEach ratio of medians with its interval from both points' spreads; the " +
        std::to_string(points.size()) +
        " intervals hold together with 95 % probability (each widened by Bonferroni's factor). In bold: the "
        "interval excludes 1. †: a point had fewer than three rounds measured on a quiet host (" + busy_line(a, "A") + ", " +
        busy_line(b, "B") + "): the host, not the build, may be what moved.\n\n" +
        ratio_table(a, methods, points);
  md += "\n## Crossovers\n\nA:\n" + crossover_sentences(a) + "\nB:\n" + crossover_sentences(b);
  md += "\n## Slopes side by side (time; memory)\n\n| method | A | B |\n| --- | --- | --- |\n";
  for (const auto& m : methods) {
    md += "| " + theory_of(m).label + " | " + slope_text(a.time_slope(m)) + "; " + slope_text(a.memory_slope(m)) +
          " | " + slope_text(b.time_slope(m)) + "; " + slope_text(b.memory_slope(m)) + " |\n";
  }
  md += "\n## Plots\n\n![time](time.svg)\n\n![memory](memory.svg)\n";
  write_file(dir / "summary.md", md);
  write_plots(a, b, dir);
  nlohmann::json j = compare_json(a, a_name, b, b_name, points, differences);
  j["verdict"] = verdict(points);
  write_file(dir / "compare.json", j.dump(1) + "\n");
}

}  // namespace longattn::report
