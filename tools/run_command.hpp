// `longattn run` (attention on .npy files) and `longattn golden DIR` (a folder of golden cases).
#pragma once

#include <CLI/CLI.hpp>

namespace longattn::tools {

void add_run_command(CLI::App& app);
void add_golden_command(CLI::App& app);

}  // namespace longattn::tools
