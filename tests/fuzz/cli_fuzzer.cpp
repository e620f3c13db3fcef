// libFuzzer target for the command line's argument parsing: the fuzzer's bytes, cut at NUL
// bytes into at most 24 arguments, parsed by every subcommand's options without running the
// commands (Actions::parse_only). Any argument list either parses or ends in CLI11's ParseError or
// longattn::Error; it never crashes.
#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "longattn/error.hpp"
#include "tools/command_line.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kMostArguments = 24;
  std::vector<std::string> args(1);
  for (std::size_t i = 0; i < size && args.size() <= kMostArguments; ++i) {
    if (data[i] == 0) {
      args.emplace_back();
    } else {
      args.back() += static_cast<char>(data[i]);
    }
  }
  CLI::App app{"longattn"};
  longattn::tools::add_commands(app, longattn::tools::Actions::parse_only);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // as CLI11's parse takes them
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError&) {
  } catch (const longattn::Error&) {
  }
  return 0;
}
