// One round of a scaling-report point, measured in a program of its own: timed runs of the
// step, the step's memory (peak resident growth once a tiny run warmed the runtime up, and the
// heap bytes the allocation counter saw), and whether the host was busy meanwhile. A fresh
// process per round keeps one method's buffers and thread pools out of the next one's figures
// and lets a point's spread include what changes from one process to the next.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/report/report_data.hpp"

namespace longattn::report {

struct RoundResult {
  std::vector<double> samples;  // seconds per run
  double timed_seconds = 0;     // what the timed runs took together
  double flops = 0, memory_bytes = 0, allocated_bytes = -1, scratch_bytes = 0;
  double probe_gflops = 0;      // the slower of a short FMA probe before and after the runs
  double read_gbps = 0;         // the slower of a read of kProbeBytes before and after them
  double steal_fraction = 0;    // of the CPU time, taken by the hypervisor for other guests
  std::string error;            // set when the round failed
};

// The memory probe reads twice the L3 of today's server cores: what a neighbour's traffic slows.
inline constexpr std::int64_t kProbeBytes = std::int64_t{64} << 20;
double probe_read_gbps(int threads);

// Timed runs add up to at least `seconds` (one run at least), in a process of its own.
RoundResult measure_round(const Settings& settings, const std::string& method, std::int64_t n, double seconds);

// The round itself, in the process measure_round starts (`longattn report-round`): measures,
// writes the result to `result_fd` and exits.
[[noreturn]] void measure_round_here(const Settings& settings, const std::string& method, std::int64_t n,
                                     double seconds, int result_fd);

// The fp32 FMA peak of the ISA attention runs on and the rate of the memory probe, with the
// report's threads, measured in a child: settings' isa, peak_gflops and read_gbps.
void measure_machine_in_child(Settings& settings);

}  // namespace longattn::report
