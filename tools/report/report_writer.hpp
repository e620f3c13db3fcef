// Writes a report folder: summary.md (the seeds' table with measured columns, crossovers in
// words, every point with its interval), points.csv, report.json, time.svg and memory.svg.
// Also the comparison of two reports.
#pragma once

#include <filesystem>
#include <string>

#include "tools/report/crossovers.hpp"
#include "tools/report/report_data.hpp"

namespace longattn::report {

void write_report(const Report& report, const std::filesystem::path& dir);

// Both reports' points in each plot (A solid, B dashed); per method and n the ratio B/A with
// its interval and whether it is beyond run-to-run noise; crossovers with their ranges; slopes
// side by side; every setting in which they differ. summary.md opens with the verdict, and
// compare.json holds the same.
void write_comparison(const Report& a, const std::string& a_name, const Report& b, const std::string& b_name,
                      const std::filesystem::path& dir);

}  // namespace longattn::report
