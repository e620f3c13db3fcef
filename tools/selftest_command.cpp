#include "tools/selftest_command.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "check/random_case.hpp"
#include "longattn/error.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::tools {

namespace {

struct SelftestArgs {
  std::int64_t cases = 200;
  std::uint64_t seed = 0;
  bool seed_given = false;
  std::int64_t only_case = -1;
  std::string isas = "all";
  std::string threads = "1,2";
  std::int64_t max_n = check::DrawLimits{}.max_n;
};

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> items;
  std::istringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) items.push_back(item);
  }
  return items;
}

check::RunOn run_on(const SelftestArgs& args) {
  check::RunOn on;
  on.threads.clear();
  if (args.isas == "all") {
    on.isas = check::runnable_isas();
  } else {
    for (const std::string& name : split(args.isas)) {
      const Isa isa = parse_isa(name);
      if (isa == Isa::automatic) throw Error("--isa: name paths (avx512, avx2, scalar), not auto");
      if (!simd::cpu_supports(isa)) throw Error("--isa: this CPU cannot run " + name);
      on.isas.push_back(isa);
    }
  }
  for (const std::string& count : split(args.threads)) {
    const int threads = std::stoi(count);
    if (threads < 1) throw Error("--threads: expected counts >= 1, got " + count);
    on.threads.push_back(threads);
  }
  if (on.isas.empty() || on.threads.empty()) throw Error("selftest: no ISA path or thread count to run");
  return on;
}

// The worst error (as a fraction of its tolerance) and the failures per feature.
struct FeatureTally {
  std::int64_t cases = 0, failed = 0;
  double worst = 0;
};

// A bar on a terminal; a line per tenth of the cases in a log.
class Progress {
 public:
  explicit Progress(std::int64_t total) : total_(total), terminal_(isatty(fileno(stderr)) != 0) {}
  void update(std::int64_t done, std::int64_t failed, double seconds) {
    if (!terminal_ && done != total_ && done % std::max<std::int64_t>(1, total_ / 10) != 0) return;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * done / std::max<std::int64_t>(1, total_));
    std::fprintf(stderr, "%s[%s%s] %lld/%lld cases, %lld failed, %.0f s%s", terminal_ ? "\r" : "",
                 std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), static_cast<long long>(failed), seconds,
                 terminal_ && done != total_ ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  std::int64_t total_;
  bool terminal_;
};

std::string reproduce_command(const SelftestArgs& args, std::int64_t index) {
  std::ostringstream s;
  s << "longattn selftest --seed " << args.seed << " --case " << index << " --isa " << args.isas << " --threads "
    << args.threads << " --max-n " << args.max_n;
  return s.str();
}

void report_features(const std::map<std::string, FeatureTally>& features) {
  std::printf("\n%-22s %8s %8s  %s\n", "feature", "cases", "failed", "worst error / tolerance");
  for (const auto& [name, tally] : features) {
    std::printf("%-22s %8lld %8lld  %.3g\n", name.c_str(), static_cast<long long>(tally.cases),
                static_cast<long long>(tally.failed), tally.worst);
  }
}

void run_selftest(SelftestArgs args) {
  if (!args.seed_given) args.seed = std::random_device{}() | (std::uint64_t{std::random_device{}()} << 32);
  const check::RunOn on = run_on(args);
  const check::DrawLimits limits{.max_n = args.max_n};
  const std::int64_t first = args.only_case >= 0 ? args.only_case : 0;
  const std::int64_t last = args.only_case >= 0 ? args.only_case + 1 : args.cases;
  std::string isa_names;
  for (Isa isa : on.isas) isa_names += (isa_names.empty() ? "" : ",") + to_string(isa);
  std::printf("longattn selftest: %lld case(s) from seed %llu, ISA paths %s, threads %s, max n %lld\n",
              static_cast<long long>(last - first), static_cast<unsigned long long>(args.seed), isa_names.c_str(),
              args.threads.c_str(), static_cast<long long>(args.max_n));
  std::fflush(stdout);
  std::map<std::string, FeatureTally> features;
  std::int64_t failed = 0, slowest = first;
  double slowest_seconds = 0;
  Progress progress(last - first);
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t index = first; index < last; ++index) {
    const auto case_start = std::chrono::steady_clock::now();
    const check::RandomCase c = check::draw_case(args.seed, index, limits);
    const check::CaseReport report = check::run(c, on);
    const double case_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - case_start).count();
    if (case_seconds > slowest_seconds) slowest = index, slowest_seconds = case_seconds;
    std::vector<std::string> names = c.features;
    names.push_back("(all)");
    for (const std::string& name : names) {
      FeatureTally& tally = features[name];
      ++tally.cases;
      tally.failed += report.passed() ? 0 : 1;
      tally.worst = std::max(tally.worst, report.worst_ratio);
    }
    if (args.only_case >= 0) std::printf("case %lld: %s\n", static_cast<long long>(index), report.description.c_str());
    if (!report.passed()) {
      ++failed;
      std::printf("\nFAILED case %lld: %s\n", static_cast<long long>(index), report.description.c_str());
      for (const std::string& failure : report.failures) std::printf("  %s\n", failure.c_str());
      std::printf("  reproduce: %s\n", reproduce_command(args, index).c_str());
      std::fflush(stdout);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.update(index - first + 1, failed, seconds);
  }
  report_features(features);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("slowest: case %lld, %.1f s\n", static_cast<long long>(slowest), slowest_seconds);
  std::printf("%lld case(s), %lld failed, in %.1f s (seed %llu)\n", static_cast<long long>(last - first),
              static_cast<long long>(failed), seconds, static_cast<unsigned long long>(args.seed));
  if (failed > 0) throw CLI::RuntimeError(1);
}

}  // namespace

void add_selftest_command(CLI::App& app, Actions actions) {
  auto args = std::make_shared<SelftestArgs>();
  CLI::App* cmd = app.add_subcommand(
      "selftest", "Random cases over every option, shape and dtype, each on every ISA path and thread count, "
                  "against the float64 reference");
  cmd->add_option("--cases", args->cases, "How many cases to draw")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", args->seed, "Seed of the draws (default: a random one, printed)")
      ->each([args](const std::string&) { args->seed_given = true; });
  cmd->add_option("--case", args->only_case, "Run only this case of the seed (as a failure's reproduce line says)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--isa", args->isas, "ISA paths: all (every one the CPU has) or a list such as avx512,scalar")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "Thread counts, the first one's bits the others must give")
      ->capture_default_str();
  cmd->add_option("--max-n", args->max_n, "The most queries or keys of a case")->capture_default_str()->check(CLI::PositiveNumber);
  on_parsed(cmd, actions, [args] { run_selftest(*args); });
}

}  // namespace longattn::tools
