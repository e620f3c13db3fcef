// One point of a scaling report, measured in a child process of its own: its time (median of
// repeats) and the peak resident memory of the step (the child's high-water mark minus what
// it held before the step, once a tiny run warmed its runtime up). A fresh process per point
// keeps one method's buffers and thread pools out of the next one's figures.
#pragma once

#include <cstdint>
#include <string>

#include "tools/report/report_data.hpp"

namespace longattn::report {

Point measure_point(const Settings& settings, const std::string& method, std::int64_t n);

// The fp32 FMA peak (GFLOP/s) of the ISA attention runs on, with the report's threads,
// measured in a child; also returns that ISA's name.
double peak_gflops_in_child(int threads, std::string& isa);

}  // namespace longattn::report
