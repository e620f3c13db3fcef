// Log-log line plots written as SVG: one line per series, markers at the measured points,
// error bars where a series has intervals, the legend naming each series (with its fitted
// slope, which the caller puts in the name).
#pragma once

#include <string>
#include <vector>

namespace longattn::report {

struct Series {
  std::string name;
  std::vector<double> x, y;
  std::vector<double> low, high;  // each point's interval, drawn as an error bar; empty for none
  int color = 0;        // index into a fixed palette
  bool dashed = false;  // the second report of a comparison
};

// x is a sequence length (ticks at powers of two), y is seconds or bytes (`y_unit` "s" or "B").
std::string loglog_svg(const std::string& title, const std::string& x_label, const std::string& y_label,
                       const std::string& y_unit, const std::vector<Series>& series);

}  // namespace longattn::report
