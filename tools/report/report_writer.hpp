// Writes a report folder: summary.md (the seeds' table with measured columns, crossovers in
// words, every point), points.csv, report.json, time.svg and memory.svg. Also the comparison
// of two reports.
#pragma once

#include <filesystem>
#include <string>

#include "tools/report/report_data.hpp"

namespace longattn::report {

void write_report(const Report& report, const std::filesystem::path& dir);

// Both reports' points in each plot (A solid, B dashed), B/A time ratios per method and n,
// slopes side by side, and every setting in which they differ.
void write_comparison(const Report& a, const std::string& a_name, const Report& b, const std::string& b_name,
                      const std::filesystem::path& dir);

// The crossovers of the report, one sentence each (also in summary.md).
std::string crossover_sentences(const Report& report);

}  // namespace longattn::report
