#include "tools/report/report_text.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>

#include "longattn/error.hpp"

namespace longattn::report {

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

std::string slope_text(const std::optional<SlopeFit>& fit) {
  if (!fit) return "—";
  return fmt("%.2f", fit->slope) + " ± " + fmt("%.2f", fit->half_width);
}

std::string spread_text(const Point& p) {
  const std::string runs = std::to_string(p.rounds) + " round(s), " + std::to_string(p.runs) + " runs";
  if (p.spread.count < 2) return "no interval, " + runs;
  return "±" + fmt("%.1f", 100 * relative_half_width(p.spread)) + " %, " + runs;
}

std::string settings_text(const Settings& s) {
  return "d = " + std::to_string(s.d) + " (" + std::to_string(s.heads) + " head(s) of " +
         std::to_string(s.d / s.heads) + "), CNN k = " + std::to_string(s.kernel) + ", window ±" +
         std::to_string(s.window) + ", " + std::to_string(s.threads) + " thread(s), n = " + std::to_string(s.n_min) +
         " … " + std::to_string(s.n_max) + "; each point the median of its runs in " + std::to_string(s.rounds) +
         "–" + std::to_string(s.max_rounds) + " fresh processes, measured until its 95 % interval is within ±" +
         fmt("%g", 100 * s.precision) + " % or " + fmt("%g", s.point_seconds) + " s of runs; " + s.isa + " on " +
         s.cpu + " (fp32 FMA peak " + fmt("%.0f", s.peak_gflops) + " GFLOP/s measured); longattn " + s.version +
         ", " + s.date;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw Error(path.string() + ": cannot write");
}

std::vector<Series> time_series(const Report& r, bool dashed, const std::string& suffix, bool with_slope) {
  std::vector<Series> out;
  int color = 0;
  for (const std::string& m : r.settings.methods) {
    Series s{theory_of(m).short_label + suffix, {}, {}, {}, {}, color++, dashed};
    for (const Point* p : r.measured(m)) {
      s.x.push_back(double(p->n));
      s.y.push_back(std::max(p->seconds, 1e-9));
      s.low.push_back(p->spread.low);
      s.high.push_back(p->spread.high);
    }
    if (with_slope) s.name += " (slope " + slope_text(r.time_slope(m)) + ")";
    if (!s.x.empty()) out.push_back(s);
  }
  return out;
}

std::vector<Series> memory_series(const Report& r, bool dashed, const std::string& suffix, bool with_slope,
                                  bool with_rss) {
  std::vector<Series> out, rss;
  int color = 0;
  for (const std::string& m : r.settings.methods) {
    Series s{theory_of(m).short_label + suffix, {}, {}, {}, {}, color, dashed};
    Series resident{theory_of(m).short_label + ", peak RSS" + suffix, {}, {}, {}, {}, color++, true};
    for (const Point* p : r.measured(m)) {
      if (p->allocated_bytes >= 0) {
        s.x.push_back(double(p->n)), s.y.push_back(std::max(p->allocated_bytes, 1.0));
      } else if (rss_resolved(*p)) {
        s.x.push_back(double(p->n)), s.y.push_back(p->memory_bytes);
      }
      if (rss_resolved(*p)) resident.x.push_back(double(p->n)), resident.y.push_back(p->memory_bytes);
    }
    if (with_slope) s.name += " (slope " + slope_text(r.memory_slope(m)) + ")";
    if (!s.x.empty()) out.push_back(s);
    if (with_rss && !resident.x.empty()) rss.push_back(resident);
  }
  out.insert(out.end(), rss.begin(), rss.end());
  return out;
}

}  // namespace longattn::report
