#include "tools/command_line.hpp"

#include "tools/bench_command.hpp"
#include "tools/report_command.hpp"
#include "tools/run_command.hpp"
#include "tools/selftest_command.hpp"

namespace longattn::tools {

void add_commands(CLI::App& app, Actions actions) {
  app.require_subcommand(1);
  add_report_command(app, actions);
  add_run_command(app, actions);
  add_bench_command(app, actions);
  add_golden_command(app, actions);
  add_selftest_command(app, actions);
}

}  // namespace longattn::tools
