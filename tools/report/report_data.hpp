// What a scaling report holds: its settings, one point per (method, n), and what each method
// is in theory (the seeds' table). Saved as report.json, which `report --compare` reads back.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace longattn::report {

struct Settings {
  std::int64_t n_min = 256, n_max = 65536;  // geometric, factor 2
  std::int64_t d = 64;                      // model dimension of every method
  std::int64_t heads = 1;                   // attention heads (head dimension d / heads)
  std::int64_t kernel = 3;                  // CNN taps
  std::int64_t window = 256;                // truncated attention: keys within ±window
  int threads = 2;
  int repeats = 3;
  std::int64_t fit_min = 4096;              // slopes fit over points with n >= fit_min
  std::int64_t materialized_max_bytes = std::int64_t{2} << 30;  // the n×n score matrix
  std::vector<std::string> methods = {"cnn", "rnn", "full", "causal", "window", "linear", "materialized"};
  // Filled in by the run:
  std::string isa, cpu, version, date;
  double peak_gflops = 0;
};

struct Point {
  std::string method;
  std::int64_t n = 0;
  bool measured = false;
  std::string note;           // why a point was not measured
  double seconds = 0;         // median of the repeats
  double flops = 0;
  double memory_bytes = 0;    // peak resident memory of the step: high-water mark minus the
                              // resident set once the method's runtime was warmed up
};

struct MethodTheory {
  std::string label, short_label, complexity, sequential_ops, max_path;
  double time_exponent, memory_exponent;  // in n, for the fitted-vs-theory columns
};

// The seeds' table row of a method; throws longattn::Error for an unknown name.
const MethodTheory& theory_of(const std::string& method);
const std::vector<std::string>& known_methods();

struct Report {
  Settings settings;
  std::vector<Point> points;

  std::vector<const Point*> measured(const std::string& method) const;
  std::optional<double> time_slope(const std::string& method) const;
  std::optional<double> memory_slope(const std::string& method) const;
};

nlohmann::json to_json(const Report& report);
Report report_from_json(const nlohmann::json& j);  // throws longattn::Error when malformed

}  // namespace longattn::report
