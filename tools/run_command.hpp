// `longattn run` (attention on .npy files) and `longattn golden DIR` (a folder of golden cases).
#pragma once

#include <CLI/CLI.hpp>

#include "tools/command_line.hpp"

namespace longattn::tools {

void add_run_command(CLI::App& app, Actions actions);
void add_golden_command(CLI::App& app, Actions actions);

}  // namespace longattn::tools
