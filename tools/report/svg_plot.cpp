#include "tools/report/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace longattn::report {
namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
constexpr double kWidth = 860, kHeight = 520, kLeft = 80, kRight = 330, kTop = 40, kBottom = 60;

std::string fmt(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

std::string n_label(double n) {
  if (n >= 1048576) return fmt("%gM", n / 1048576);
  if (n >= 1024) return fmt("%gK", n / 1024);
  return fmt("%g", n);
}

std::string y_label_of(double v, const std::string& unit) {
  if (unit == "B") {
    const char* names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (v >= 1024 && i < 4) v /= 1024, ++i;
    return fmt("%g ", v) + names[i];
  }
  if (v >= 1) return fmt("%g s", v);
  if (v >= 1e-3) return fmt("%g ms", v * 1e3);
  return fmt("%g µs", v * 1e6);
}

// A vertical bar with caps from y_low to y_high (pixels) at x.
std::string error_bar(double x, double y_low, double y_high, const std::string& color) {
  std::string svg = "<path class=\"interval\" d=\"M" + fmt("%.1f", x) + " " + fmt("%.1f", y_low) + "V" + fmt("%.1f", y_high);
  for (double y : {y_low, y_high}) svg += "M" + fmt("%.1f", x - 4) + " " + fmt("%.1f", y) + "h8";
  return svg + "\" stroke=\"" + color + "\" stroke-width=\"1.5\" fill=\"none\"/>\n";
}

// Where values land: log2 of the length in x, log of the value in y, over whole ticks.
struct Axes {
  double lx0, lx1, ybase, ly0, ly1;
  static constexpr double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;

  // Axis ranges: whole powers of two in x, whole decades (or powers of 4 for bytes) in y.
  Axes(const std::vector<Series>& series, const std::string& y_unit) {
    double x0 = std::numeric_limits<double>::max(), x1 = 0, y0 = x0, y1 = 0;
    for (const Series& s : series)
      for (std::size_t i = 0; i < s.x.size(); ++i) {
        if (s.x[i] <= 0 || s.y[i] <= 0) continue;
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
        if (i < s.low.size() && s.low[i] > 0) y0 = std::min(y0, s.low[i]);
        if (i < s.high.size()) y1 = std::max(y1, s.high[i]);
      }
    if (x1 == 0) x0 = 1, x1 = 2, y0 = 1, y1 = 10;
    lx0 = std::floor(std::log2(x0)), lx1 = std::max(lx0 + 1, std::ceil(std::log2(x1)));
    ybase = y_unit == "B" ? 4.0 : 10.0;
    ly0 = std::floor(std::log(y0) / std::log(ybase)), ly1 = std::max(ly0 + 1, std::ceil(std::log(y1) / std::log(ybase)));
  }
  double px(double x) const { return kLeft + (std::log2(x) - lx0) / (lx1 - lx0) * plot_w; }
  double py(double y) const { return kTop + plot_h - (std::log(y) / std::log(ybase) - ly0) / (ly1 - ly0) * plot_h; }
};

std::string frame(const Axes& a, const std::string& title, const std::string& x_label, const std::string& y_label,
                  const std::string& y_unit) {
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fmt("%g", kWidth) + "\" height=\"" +
                    fmt("%g", kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + fmt("%g", kLeft) + "\" y=\"24\" font-size=\"16\" font-weight=\"bold\">" + escape(title) + "</text>\n";
  for (double e = a.lx0; e <= a.lx1; ++e) {
    const double x = a.px(std::exp2(e));
    svg += "<line x1=\"" + fmt("%.1f", x) + "\" y1=\"" + fmt("%.1f", kTop) + "\" x2=\"" + fmt("%.1f", x) + "\" y2=\"" +
           fmt("%.1f", kTop + a.plot_h) + "\" stroke=\"#ddd\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", kTop + a.plot_h + 18) + "\" text-anchor=\"middle\">" +
           n_label(std::exp2(e)) + "</text>\n";
  }
  for (double e = a.ly0; e <= a.ly1; ++e) {
    const double value = std::pow(a.ybase, e), y = a.py(value);
    svg += "<line x1=\"" + fmt("%.1f", kLeft) + "\" y1=\"" + fmt("%.1f", y) + "\" x2=\"" + fmt("%.1f", kLeft + a.plot_w) +
           "\" y2=\"" + fmt("%.1f", y) + "\" stroke=\"#ddd\"/>\n";
    svg += "<text x=\"" + fmt("%.1f", kLeft - 6) + "\" y=\"" + fmt("%.1f", y + 4) + "\" text-anchor=\"end\">" +
           escape(y_label_of(value, y_unit)) + "</text>\n";
  }
  svg += "<rect x=\"" + fmt("%g", kLeft) + "\" y=\"" + fmt("%g", kTop) + "\" width=\"" + fmt("%g", a.plot_w) +
         "\" height=\"" + fmt("%g", a.plot_h) + "\" fill=\"none\" stroke=\"#333\"/>\n";
  svg += "<text x=\"" + fmt("%.1f", kLeft + a.plot_w / 2) + "\" y=\"" + fmt("%.1f", kHeight - 16) +
         "\" text-anchor=\"middle\">" + escape(x_label) + "</text>\n";
  svg += "<text transform=\"translate(18," + fmt("%.1f", kTop + a.plot_h / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
         escape(y_label) + "</text>\n";
  return svg;
}

// A series' markers, error bars and line, and its legend entry at legend_y.
std::string series_svg(const Axes& a, const Series& s, double legend_y) {
  const std::string color = kPalette[s.color % 8];
  const std::string dash = s.dashed ? " stroke-dasharray=\"6 4\"" : "";
  std::string svg, points;
  for (std::size_t i = 0; i < s.x.size(); ++i) {
    if (s.x[i] <= 0 || s.y[i] <= 0) continue;
    const double x = a.px(s.x[i]), y = a.py(s.y[i]);
    points += fmt("%.1f", x) + "," + fmt("%.1f", y) + " ";
    svg += "<circle cx=\"" + fmt("%.1f", x) + "\" cy=\"" + fmt("%.1f", y) + "\" r=\"3\" fill=\"" + color + "\"/>\n";
    if (i < s.low.size() && i < s.high.size() && s.low[i] > 0) svg += error_bar(x, a.py(s.low[i]), a.py(s.high[i]), color);
  }
  svg += "<polyline points=\"" + points + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\"" + dash + "/>\n";
  const double lx = kLeft + a.plot_w + 14;
  svg += "<line x1=\"" + fmt("%.1f", lx) + "\" y1=\"" + fmt("%.1f", legend_y) + "\" x2=\"" + fmt("%.1f", lx + 24) +
         "\" y2=\"" + fmt("%.1f", legend_y) + "\" stroke=\"" + color + "\" stroke-width=\"2\"" + dash + "/>\n";
  svg += "<text x=\"" + fmt("%.1f", lx + 30) + "\" y=\"" + fmt("%.1f", legend_y + 4) + "\">" + escape(s.name) + "</text>\n";
  return svg;
}

}  // namespace

std::string loglog_svg(const std::string& title, const std::string& x_label, const std::string& y_label,
                       const std::string& y_unit, const std::vector<Series>& series) {
  const Axes axes(series, y_unit);
  std::string svg = frame(axes, title, x_label, y_label, y_unit);
  double legend_y = kTop + 10;
  for (const Series& s : series) svg += series_svg(axes, s, legend_y), legend_y += 20;
  return svg + "</svg>\n";
}

}  // namespace longattn::report
