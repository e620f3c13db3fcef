#include "tools/report/report_data.hpp"

#include <algorithm>
#include <map>

#include "longattn/error.hpp"
#include "tools/report/scaling_fit.hpp"

namespace longattn::report {

const std::vector<std::string>& known_methods() {
  static const std::vector<std::string> names = {"cnn",    "rnn",    "lstm",  "full",
                                                 "causal", "window", "linear", "materialized"};
  return names;
}

const MethodTheory& theory_of(const std::string& method) {
  static const std::map<std::string, MethodTheory> table = {
      {"cnn", {"CNN (1-D conv, k taps)", "CNN", "O(k·n·d²)", "O(1)", "O(n/k)", 1, 1}},
      {"rnn", {"RNN (Elman, tanh)", "RNN", "O(n·d²)", "O(n)", "O(n)", 1, 1}},
      {"lstm", {"LSTM", "LSTM", "O(n·d²)", "O(n)", "O(n)", 1, 1}},
      {"full", {"self-attention, full (longattn)", "attention, full", "O(n²·d)", "O(1)", "O(1)", 2, 1}},
      {"causal", {"self-attention, causal (longattn)", "attention, causal", "O(n²·d)", "O(1)", "O(1)", 2, 1}},
      {"window", {"self-attention, truncated ±w (longattn)", "attention, window ±w", "O(n·w·d)", "O(1)", "O(n/w)", 1, 1}},
      {"linear", {"self-attention, linear φ = elu+1 (longattn)", "attention, linear", "O(n·d²)", "O(1)", "O(1)", 1, 1}},
      {"materialized", {"self-attention, n×n matrix (oneDNN)", "attention, n×n (oneDNN)", "O(n²·d)", "O(1)", "O(1)", 2, 2}},
  };
  const auto it = table.find(method);
  if (it == table.end()) throw Error("method: unknown \"" + method + "\"");
  return it->second;
}

std::vector<const Point*> Report::measured(const std::string& method) const {
  std::vector<const Point*> out;
  for (const Point& p : points) {
    if (p.method == method && p.measured) out.push_back(&p);
  }
  std::sort(out.begin(), out.end(), [](const Point* a, const Point* b) { return a->n < b->n; });
  return out;
}

namespace {

std::optional<double> slope_of(const Report& r, const std::string& method, double Point::*field) {
  std::vector<double> n, y;
  for (const Point* p : r.measured(method)) {
    if (p->n >= r.settings.fit_min) {
      n.push_back(double(p->n));
      // Memory under one page is noise: the fit sees at least a page.
      y.push_back(std::max(p->*field, field == &Point::memory_bytes ? 4096.0 : 0.0));
    }
  }
  return loglog_slope(n, y);
}

}  // namespace

std::optional<double> Report::time_slope(const std::string& method) const { return slope_of(*this, method, &Point::seconds); }
std::optional<double> Report::memory_slope(const std::string& method) const {
  return slope_of(*this, method, &Point::memory_bytes);
}

nlohmann::json to_json(const Report& r) {
  const Settings& s = r.settings;
  nlohmann::json points = nlohmann::json::array();
  for (const Point& p : r.points) {
    points.push_back({{"method", p.method}, {"n", p.n}, {"measured", p.measured}, {"note", p.note},
                      {"seconds", p.seconds}, {"flops", p.flops}, {"gflops", p.seconds > 0 ? p.flops / p.seconds * 1e-9 : 0.0},
                      {"memory_bytes", p.memory_bytes}});
  }
  nlohmann::json slopes = nlohmann::json::object();
  for (const std::string& m : s.methods) {
    const auto t = r.time_slope(m), mem = r.memory_slope(m);
    slopes[m] = {{"time", t ? nlohmann::json(*t) : nlohmann::json(nullptr)},
                 {"memory", mem ? nlohmann::json(*mem) : nlohmann::json(nullptr)}};
  }
  return {{"settings",
           {{"n_min", s.n_min}, {"n_max", s.n_max}, {"d", s.d}, {"heads", s.heads}, {"kernel", s.kernel},
            {"window", s.window}, {"threads", s.threads}, {"repeats", s.repeats}, {"fit_min", s.fit_min},
            {"materialized_max_bytes", s.materialized_max_bytes}, {"methods", s.methods}, {"isa", s.isa},
            {"cpu", s.cpu}, {"version", s.version}, {"date", s.date}, {"peak_gflops", s.peak_gflops}}},
          {"points", points},
          {"slopes", slopes}};
}

Report report_from_json(const nlohmann::json& j) {
  try {
    Report r;
    const auto& s = j.at("settings");
    r.settings.n_min = s.at("n_min");
    r.settings.n_max = s.at("n_max");
    r.settings.d = s.at("d");
    r.settings.heads = s.at("heads");
    r.settings.kernel = s.at("kernel");
    r.settings.window = s.at("window");
    r.settings.threads = s.at("threads");
    r.settings.repeats = s.at("repeats");
    r.settings.fit_min = s.at("fit_min");
    r.settings.materialized_max_bytes = s.at("materialized_max_bytes");
    r.settings.methods = s.at("methods").get<std::vector<std::string>>();
    r.settings.isa = s.at("isa");
    r.settings.cpu = s.at("cpu");
    r.settings.version = s.at("version");
    r.settings.date = s.at("date");
    r.settings.peak_gflops = s.at("peak_gflops");
    for (const auto& p : j.at("points")) {
      r.points.push_back({p.at("method"), p.at("n"), p.at("measured"), p.at("note"), p.at("seconds"), p.at("flops"),
                          p.at("memory_bytes")});
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("report.json: ") + e.what());
  }
}

}  // namespace longattn::report
