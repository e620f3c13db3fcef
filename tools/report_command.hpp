// `longattn report`: the complexity-scaling report (CNN vs RNN vs self-attention, measured,
// fitted and plotted), and `longattn report --compare A B`.
#pragma once

#include <CLI/CLI.hpp>

#include "tools/command_line.hpp"

namespace longattn::tools {

void add_report_command(CLI::App& app, Actions actions);

}  // namespace longattn::tools
