// The `longattn` command line's subcommands, added to an app: for the program and for the
// command-line fuzzer, which parses without running them.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace longattn::tools {

// Whether a parsed command runs, or the command line is only parsed (the fuzzer).
enum class Actions { run, parse_only };

void add_commands(CLI::App& app, Actions actions = Actions::run);

// Sets what `command` does once parsed. The action owns the variables the command's options
// write to, so they live as long as the command, whether it runs or not.
inline void on_parsed(CLI::App* command, Actions actions, std::function<void()> action) {
  command->callback([actions, action = std::move(action)] {
    if (actions == Actions::run) action();
  });
}

}  // namespace longattn::tools
