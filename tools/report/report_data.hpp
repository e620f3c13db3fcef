// What a scaling report holds: its settings, one point per (method, n), and what each method
// is in theory (the seeds' table). Saved as report.json, which `report --compare` reads back.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tools/report/scaling_fit.hpp"
#include "tools/report/spread.hpp"

namespace longattn::report {

struct Settings {
  std::int64_t n_min = 256, n_max = 65536;  // geometric, factor 2
  std::int64_t d = 64;                      // model dimension of every method
  std::int64_t heads = 1;                   // attention heads (head dimension d / heads)
  std::int64_t kernel = 3;                  // CNN taps
  std::int64_t window = 256;                // truncated attention: keys within ±window
  int threads = 1;                          // steadier than 2: see bench/RESULTS.md
  // Each point is measured in rounds, each in a fresh process, round-robin over the points so
  // that its runs span the whole report; rounds go on until the median's 95 % interval is
  // within ±precision, or the point's measuring time reaches point_seconds. Six rounds at
  // least give the distribution-free interval; a point whose budget runs out sooner stops
  // after kFewestRounds.
  int rounds = 6;
  int max_rounds = 10;
  double precision = 0.03;
  double round_seconds = 0.05;              // timed runs of a round add up to at least this
  double point_seconds = 3;
  std::int64_t fit_min = 4096;              // slopes fit over points with n >= fit_min
  std::int64_t materialized_max_bytes = std::int64_t{2} << 30;  // the n×n score matrix
  std::vector<std::string> methods = {"cnn", "rnn", "full", "causal", "window", "linear", "materialized"};
  // Filled in by the run:
  std::string isa, cpu, version, date;
  double peak_gflops = 0;
  double read_gbps = 0;  // the memory probe before the points
};

struct Point {
  std::string method;
  std::int64_t n = 0;
  bool measured = false;
  std::string note;           // why a point was not measured, or what to know about it
  // Runs within one process agree more than processes do, so a round (a process) is the unit
  // the interval counts: seconds is the median of the rounds' median times.
  double seconds = 0;
  Spread spread;                      // of the quiet rounds' medians: see quiet_spread
  std::vector<double> round_medians;  // seconds, every round in the order measured
  std::vector<bool> round_contended;  // whether the host was busy around each round
  std::vector<double> round_probe_gflops, round_read_gbps;  // the probes around each round
  double min_seconds = 0;            // the fastest run
  int runs = 0, rounds = 0;
  bool budget_ran_out = false;  // point_seconds spent before the interval reached ±precision
  double probe_share = 1;     // the lowest FMA probe around a round, over the report's peak
  double read_share = 1;      // the lowest memory probe around a round, over the median one
  double stolen_share = 0;    // the most CPU time the hypervisor took during a round
  double flops = 0;
  double memory_bytes = 0;    // peak resident memory of the step: high-water mark minus the
                              // resident set once the method's runtime was warmed up
  double allocated_bytes = -1;  // the most the heap grew during the step; -1 when not counted
  double scratch_bytes = 0;   // the engine's own scratch (attention methods)
};

// A Student-t interval needs three rounds.
inline constexpr int kFewestRounds = 3;

// A busy neighbour slows a round for minutes without the build being any slower, so a point's
// spread counts the rounds measured on a quiet host whenever there are enough of them for an
// interval; only a point with fewer is judged on all its rounds, and is measured on a busy host.
Spread quiet_spread(const Point& p);
bool measured_on_busy_host(const Point& p);
int contended_rounds(const Point& p);  // rounds measured while the host was busy

// Peak resident memory counts pages, and a step whose blocks come from pages a warm-up already
// made resident shows nothing: growth below this is not a measurement.
inline constexpr double kRssResolutionBytes = 1 << 20;
inline bool rss_resolved(const Point& p) { return p.memory_bytes >= kRssResolutionBytes; }

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
  // Memory slopes fit the allocation counter's figures where the report has them, else peak RSS.
  std::optional<SlopeFit> time_slope(const std::string& method) const;
  std::optional<SlopeFit> memory_slope(const std::string& method) const;
};

nlohmann::json to_json(const Report& report);
Report report_from_json(const nlohmann::json& j);  // throws longattn::Error when malformed

}  // namespace longattn::report
