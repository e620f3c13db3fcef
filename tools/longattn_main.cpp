// The `longattn` command line.
#include <CLI/CLI.hpp>

#include <iostream>

#include <exception>

#include "tools/bench_command.hpp"
#include "tools/report_command.hpp"
#include "tools/run_command.hpp"

int main(int argc, char** argv) {
  CLI::App app{"longattn: exact self-attention on CPUs for long sequences"};
  app.require_subcommand(1);
  longattn::tools::add_report_command(app);
  longattn::tools::add_run_command(app);
  longattn::tools::add_bench_command(app);
  longattn::tools::add_golden_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {  // a subcommand's own exit code (golden: failures)
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {  // unknown flags, missing files: CLI11 says which
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const std::exception& e) {  // longattn::Error names the file or argument
    std::cerr << "longattn: " << e.what() << std::endl;
    return 2;
  }
  return 0;
}
