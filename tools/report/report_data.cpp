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

bool contended(const Point& p, std::size_t round) {
  return round < p.round_contended.size() && p.round_contended[round];
}

int quiet_rounds(const Point& p) { return static_cast<int>(p.round_medians.size()) - contended_rounds(p); }

}  // namespace

int contended_rounds(const Point& p) {
  int busy = 0;
  for (std::size_t i = 0; i < p.round_medians.size(); ++i) busy += contended(p, i);
  return busy;
}

Spread quiet_spread(const Point& p) {
  if (quiet_rounds(p) < kFewestRounds) return spread_of(p.round_medians);
  std::vector<double> quiet;
  for (std::size_t i = 0; i < p.round_medians.size(); ++i)
    if (!contended(p, i)) quiet.push_back(p.round_medians[i]);
  return spread_of(quiet);
}

bool measured_on_busy_host(const Point& p) {
  return p.measured && quiet_rounds(p) < std::min<int>(kFewestRounds, p.round_medians.size());
}

namespace {

std::optional<SlopeFit> slope_of(const Report& r, const std::string& method, double (*figure)(const Point&)) {
  std::vector<double> n, y;
  for (const Point* p : r.measured(method)) {
    if (p->n >= r.settings.fit_min) {
      n.push_back(double(p->n));
      y.push_back(figure(*p));
    }
  }
  return fit_loglog_slope(n, y);
}

double time_of(const Point& p) { return p.seconds; }

// The allocation counter where it counted; else peak RSS, which the fit sees at one page at least.
double memory_of(const Point& p) { return p.allocated_bytes >= 0 ? p.allocated_bytes : std::max(p.memory_bytes, 4096.0); }

nlohmann::json optional_fit(const std::optional<SlopeFit>& fit) {
  if (!fit) return nullptr;
  return {{"slope", fit->slope}, {"plus_minus", fit->half_width}};
}

nlohmann::json point_json(const Point& p) {
  std::vector<bool> round_contended(p.round_medians.size());
  for (std::size_t i = 0; i < round_contended.size(); ++i) round_contended[i] = contended(p, i);
  return {{"method", p.method}, {"n", p.n}, {"measured", p.measured}, {"note", p.note},
          {"seconds", p.seconds}, {"min_seconds", p.min_seconds}, {"low_seconds", p.spread.low},
          {"high_seconds", p.spread.high}, {"runs", p.runs}, {"rounds", p.rounds}, {"round_medians", p.round_medians},
          {"round_contended", round_contended}, {"round_probe_gflops", p.round_probe_gflops},
          {"round_read_gbps", p.round_read_gbps}, {"budget_ran_out", p.budget_ran_out}, {"contended_rounds", contended_rounds(p)},
          {"probe_share", p.probe_share}, {"read_share", p.read_share}, {"stolen_share", p.stolen_share},
          {"flops", p.flops}, {"gflops", p.seconds > 0 ? p.flops / p.seconds * 1e-9 : 0.0},
          {"memory_bytes", p.memory_bytes}, {"rss_resolved", rss_resolved(p)},
          {"allocated_bytes", p.allocated_bytes}, {"scratch_bytes", p.scratch_bytes}};
}

// Reports written before points carried their runs read back with a spread of one run.
Point point_from_json(const nlohmann::json& j) {
  Point p;
  p.method = j.at("method");
  p.n = j.at("n");
  p.measured = j.at("measured");
  p.note = j.at("note");
  p.seconds = j.at("seconds");
  p.flops = j.at("flops");
  p.memory_bytes = j.at("memory_bytes");
  p.round_medians = j.value("round_medians", std::vector<double>{});
  if (p.round_medians.empty() && p.measured) p.round_medians = {p.seconds};
  p.round_contended = j.value("round_contended", std::vector<bool>(p.round_medians.size(), false));
  p.round_probe_gflops = j.value("round_probe_gflops", std::vector<double>{});
  p.round_read_gbps = j.value("round_read_gbps", std::vector<double>{});
  if (p.round_contended.size() != p.round_medians.size()) throw Error("report: round_contended and round_medians differ in length");
  p.spread = quiet_spread(p);
  p.min_seconds = j.value("min_seconds", p.seconds);
  p.runs = j.value("runs", p.measured ? 1 : 0);
  p.rounds = static_cast<int>(p.round_medians.size());
  p.budget_ran_out = j.value("budget_ran_out", false);
  p.probe_share = j.value("probe_share", 1.0);
  p.read_share = j.value("read_share", 1.0);
  p.stolen_share = j.value("stolen_share", 0.0);
  p.allocated_bytes = j.value("allocated_bytes", -1.0);
  p.scratch_bytes = j.value("scratch_bytes", 0.0);
  return p;
}

}  // namespace

std::optional<SlopeFit> Report::time_slope(const std::string& method) const { return slope_of(*this, method, time_of); }
std::optional<SlopeFit> Report::memory_slope(const std::string& method) const {
  return slope_of(*this, method, memory_of);
}

nlohmann::json to_json(const Report& r) {
  const Settings& s = r.settings;
  nlohmann::json points = nlohmann::json::array();
  for (const Point& p : r.points) points.push_back(point_json(p));
  nlohmann::json slopes = nlohmann::json::object();
  for (const std::string& m : s.methods) {
    slopes[m] = {{"time", optional_fit(r.time_slope(m))}, {"memory", optional_fit(r.memory_slope(m))}};
  }
  return {{"settings",
           {{"n_min", s.n_min}, {"n_max", s.n_max}, {"d", s.d}, {"heads", s.heads}, {"kernel", s.kernel},
            {"window", s.window}, {"threads", s.threads}, {"rounds", s.rounds}, {"max_rounds", s.max_rounds},
            {"precision", s.precision}, {"round_seconds", s.round_seconds}, {"point_seconds", s.point_seconds},
            {"fit_min", s.fit_min}, {"materialized_max_bytes", s.materialized_max_bytes}, {"methods", s.methods},
            {"isa", s.isa}, {"cpu", s.cpu}, {"version", s.version}, {"date", s.date}, {"peak_gflops", s.peak_gflops},
            {"read_gbps", s.read_gbps}}},
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
    r.settings.rounds = s.value("rounds", 1);
    r.settings.max_rounds = s.value("max_rounds", 1);
    r.settings.precision = s.value("precision", 0.0);
    r.settings.round_seconds = s.value("round_seconds", 0.0);
    r.settings.point_seconds = s.value("point_seconds", 0.0);
    r.settings.fit_min = s.at("fit_min");
    r.settings.materialized_max_bytes = s.at("materialized_max_bytes");
    r.settings.methods = s.at("methods").get<std::vector<std::string>>();
    r.settings.isa = s.at("isa");
    r.settings.cpu = s.at("cpu");
    r.settings.version = s.at("version");
    r.settings.date = s.at("date");
    r.settings.peak_gflops = s.at("peak_gflops");
    r.settings.read_gbps = s.value("read_gbps", 0.0);
    for (const auto& p : j.at("points")) r.points.push_back(point_from_json(p));
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("report.json: ") + e.what());
  }
}

}  // namespace longattn::report
