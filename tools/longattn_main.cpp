// The `longattn` command line.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>

#include "tools/command_line.hpp"

int main(int argc, char** argv) {
  CLI::App app{"longattn: exact self-attention on CPUs for long sequences"};
  longattn::tools::add_commands(app);
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
