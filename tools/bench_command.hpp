// `longattn bench`: one attention shape, timed against the baseline, as text or JSON.
#pragma once

#include <CLI/CLI.hpp>

#include "tools/command_line.hpp"

namespace longattn::tools {

void add_bench_command(CLI::App& app, Actions actions);

}  // namespace longattn::tools
