// The order a report measures in: round-robin over its points, a fresh process per round, until
// every point's median is within ±precision or its time budget is spent. Rounds measured while
// the host was busy do not count toward a point's least rounds.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tools/report/measure_point.hpp"
#include "tools/report/report_data.hpp"

namespace longattn::report {

// A round counts as measured under contention when the FMA probe around it ran below
// kProbeShare of the report's peak, the memory probe below kReadShare of its typical (median)
// rate in the report, or the hypervisor stole more than kStolenShare of the CPU time. The read
// rate of a shared host wanders by a third from round to round, so only a deep drop counts.
inline constexpr double kProbeShare = 0.9, kReadShare = 0.7, kStolenShare = 0.05;
struct HostReference {
  double peak_gflops = 0;
  std::vector<double> reads_gbps;  // every memory probe of the report so far
  double typical_read_gbps() const;
};
bool under_contention(const RoundResult& round, const HostReference& host);

// Calls `progress(points finished, points, what was just measured)` after every round.
using ProgressFn = std::function<void(int, int, const std::string&)>;

std::vector<Point> measure_points(const Settings& settings, const ProgressFn& progress);

}  // namespace longattn::report
