#include "tools/report/measure_schedule.hpp"

#include <algorithm>
#include <cmath>

#include "bench/measure.hpp"

namespace longattn::report {
namespace {

struct Pending {
  Point point;
  double spent = 0;  // seconds of timed runs so far
  std::vector<double> memory, allocated;
  bool finished = false, measured_again = false;
};

std::vector<Pending> planned_points(const Settings& s) {
  std::vector<Pending> plan;
  for (std::int64_t n = s.n_min; n <= s.n_max; n *= 2) {
    for (const std::string& m : s.methods) {
      Pending p;
      p.point.method = m;
      p.point.n = n;
      if (m == "materialized" && n * n * 4 > s.materialized_max_bytes) {
        p.point.note = "skipped: the n×n score matrix exceeds --materialized-max-bytes";
        p.finished = true;
      }
      plan.push_back(std::move(p));
    }
  }
  return plan;
}

RoundResult next_round(const Settings& s, const Pending& p, HostReference& host) {
  RoundResult round = measure_round(s, p.point.method, p.point.n, s.round_seconds);
  if (round.error.empty()) host.reads_gbps.push_back(round.read_gbps);
  return round;
}

void add_round(const Settings& s, Pending& p, const RoundResult& round, const HostReference& host) {
  Point& point = p.point;
  if (!round.error.empty()) {
    point.note = "failed: " + round.error;
    point.measured = false;
    p.finished = true;
    return;
  }
  const bool contended = under_contention(round, host);
  point.round_medians.push_back(bench::median(round.samples));
  point.round_contended.push_back(contended);
  point.round_probe_gflops.push_back(round.probe_gflops);
  point.round_read_gbps.push_back(round.read_gbps);
  point.min_seconds = std::min(point.rounds == 0 ? INFINITY : point.min_seconds,
                               *std::min_element(round.samples.begin(), round.samples.end()));
  point.runs += static_cast<int>(round.samples.size());
  point.rounds = static_cast<int>(point.round_medians.size());
  point.spread = quiet_spread(point);
  point.seconds = point.spread.median;
  point.measured = true;
  point.probe_share = std::min(point.probe_share, round.probe_gflops / s.peak_gflops);
  point.read_share = std::min(point.read_share, round.read_gbps / std::max(host.typical_read_gbps(), 1e-9));
  point.stolen_share = std::max(point.stolen_share, round.steal_fraction);
  point.flops = round.flops;
  point.scratch_bytes = round.scratch_bytes;
  p.memory.push_back(round.memory_bytes);
  p.allocated.push_back(round.allocated_bytes);
  point.memory_bytes = bench::median(p.memory);
  point.allocated_bytes = bench::median(p.allocated);
  p.spent += round.timed_seconds;

  const bool precise = relative_half_width(point.spread) <= s.precision;
  const bool out_of_budget = p.spent >= s.point_seconds || point.rounds >= s.max_rounds;
  const int quiet = point.rounds - contended_rounds(point);
  if (!out_of_budget) {
    p.finished = quiet >= s.rounds && precise;  // rounds on a busy host do not count toward the least
  } else if (contended && !p.measured_again) {
    p.measured_again = true;  // once past its budget: a busy host must not stretch the report without end
  } else {
    p.finished = point.rounds >= std::min(s.rounds, kFewestRounds);
  }
  point.budget_ran_out = p.finished && !precise;
}

std::string describe(const Point& p) {
  std::string note;
  if (p.budget_ran_out) {
    note = "time budget spent at ±" + std::to_string(int(std::lround(100 * relative_half_width(p.spread)))) + " %";
  }
  if (const int busy = contended_rounds(p); busy > 0) {
    note += (note.empty() ? "" : "; ") + std::to_string(busy) + " of " + std::to_string(p.rounds) +
            " rounds under host contention" + (measured_on_busy_host(p) ? ", all of them counted" : ", not counted");
  }
  return note;
}

}  // namespace

double HostReference::typical_read_gbps() const { return reads_gbps.empty() ? 0 : bench::median(reads_gbps); }

bool under_contention(const RoundResult& round, const HostReference& host) {
  return round.probe_gflops < kProbeShare * host.peak_gflops || round.read_gbps < kReadShare * host.typical_read_gbps() ||
         round.steal_fraction > kStolenShare;
}

std::vector<Point> measure_points(const Settings& s, const ProgressFn& progress) {
  std::vector<Pending> plan = planned_points(s);
  HostReference host{s.peak_gflops, {s.read_gbps}};
  const int total = static_cast<int>(plan.size());
  auto finished = [&] { return static_cast<int>(std::count_if(plan.begin(), plan.end(), [](const Pending& p) { return p.finished; })); };
  for (int round = 1; round <= s.max_rounds + 1 && finished() < total; ++round) {
    for (Pending& p : plan) {
      if (p.finished) continue;
      add_round(s, p, next_round(s, p, host), host);
      progress(finished(), total, "round " + std::to_string(round) + ": " + p.point.method + " n=" + std::to_string(p.point.n));
    }
  }
  std::vector<Point> points;
  for (Pending& p : plan) {
    if (p.point.measured) p.point.note = describe(p.point);
    points.push_back(std::move(p.point));
  }
  return points;
}

}  // namespace longattn::report
