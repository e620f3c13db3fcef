// `longattn report`: the complexity-scaling report (CNN vs RNN vs self-attention, measured,
// fitted and plotted), and `longattn report --compare A B`.
#pragma once

#include <CLI/CLI.hpp>

namespace longattn::tools {

void add_report_command(CLI::App& app);

}  // namespace longattn::tools
