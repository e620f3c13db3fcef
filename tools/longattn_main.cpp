// The `longattn` command line.
#include <CLI/CLI.hpp>

#include <iostream>

#include "longattn/error.hpp"
#include "tools/bench_command.hpp"

int main(int argc, char** argv) {
  CLI::App app{"longattn: exact self-attention on CPUs for long sequences"};
  app.require_subcommand(1);
  longattn::tools::add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const longattn::Error& e) {
    std::cerr << "longattn: " << e.what() << std::endl;
    return 2;
  }
  return 0;
}
