// `longattn selftest`: random cases over everything the engine has, each run on every ISA path
// and thread count asked for and compared with the fp64 reference (check/random_case.hpp).
#pragma once

#include <CLI/CLI.hpp>

#include "tools/command_line.hpp"

namespace longattn::tools {

void add_selftest_command(CLI::App& app, Actions actions);

}  // namespace longattn::tools
