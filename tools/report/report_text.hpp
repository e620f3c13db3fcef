// What the report and the comparison write alike: figures as text, the settings line, the
// series of the plots, files.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tools/report/report_data.hpp"
#include "tools/report/svg_plot.hpp"

namespace longattn::report {

std::string fmt(const char* format, double value);
std::string seconds_text(double seconds);
std::string bytes_text(double bytes);
std::string slope_text(const std::optional<SlopeFit>& fit);  // "2.01 ± 0.03", or "—"
std::string spread_text(const Point& p);                     // "±1.2 %, 14 runs in 3 rounds"
std::string settings_text(const Settings& s);

void write_file(const std::filesystem::path& path, const std::string& text);

// Each method's median times with their intervals; `suffix` marks a comparison's report.
std::vector<Series> time_series(const Report& r, bool dashed, const std::string& suffix, bool with_slope);

// Each method's memory: the heap bytes the step allocated where they were counted, else its
// peak resident growth at the points RSS resolves. With `with_rss`, peak RSS too, dashed, at
// those points only.
std::vector<Series> memory_series(const Report& r, bool dashed, const std::string& suffix, bool with_slope,
                                  bool with_rss);

}  // namespace longattn::report
