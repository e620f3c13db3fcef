#include "tools/report/measure_point.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "bench/measure.hpp"
#include "bench/onednn_attention.hpp"
#include "bench/sequence_baselines.hpp"
#include "longattn/attention.hpp"
#include "longattn/error.hpp"
#include "longattn/machine.hpp"
#include "tools/report/allocation_counter.hpp"

namespace longattn::report {
namespace {

constexpr int kMaxSamples = 512;

// What a child sends back through its pipe: plain data of a fixed size.
struct ChildResult {
  double samples[kMaxSamples] = {};
  int sample_count = 0;
  double timed_seconds = 0, flops = 0, memory_bytes = 0, allocated_bytes = -1, scratch_bytes = 0;
  double probe_gflops = 0, read_gbps = 0, steal_fraction = 0;
  char label[64] = {};  // the peak probe's ISA
  char error[256] = {};
};

// Lowers the high-water mark to the current resident set: a forked child inherits its
// parent's mark, which would otherwise hide a small step's peak.
void reset_peak_resident() { std::ofstream("/proc/self/clear_refs") << "5"; }

// Allocated and written once per process, before the first probe times a read of it.
std::span<const std::uint64_t> probe_buffer() {
  static const std::vector<std::uint64_t> buffer = [] {
    std::vector<std::uint64_t> b(static_cast<std::size_t>(kProbeBytes / 8));
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = i;
    return b;
  }();
  return buffer;
}

// Waits for the child `pid` and returns what it wrote to the pipe `from`.
ChildResult result_of(pid_t pid, int from) {
  ChildResult r;
  std::size_t got = 0;
  while (got < sizeof r) {
    const ssize_t part = read(from, reinterpret_cast<char*>(&r) + got, sizeof r - got);
    if (part <= 0) break;
    got += static_cast<std::size_t>(part);
  }
  close(from);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::strncpy(r.error, "the measuring process died (out of memory?)", sizeof r.error - 1);
  }
  return r;
}

[[noreturn]] void send(const ChildResult& r, int to) {
  const ssize_t written = write(to, &r, sizeof r);
  _exit(written == sizeof r ? 0 : 1);
}

// Runs `body` in a forked child and returns what it wrote. The parent never starts a thread
// pool, so forking is safe.
ChildResult run_in_child(const std::function<void(ChildResult&)>& body) {
  int fds[2];
  if (pipe(fds) != 0) throw Error("report: cannot create a pipe");
  const pid_t pid = fork();
  if (pid < 0) throw Error("report: cannot fork");
  if (pid == 0) {
    close(fds[0]);
    ChildResult r;
    try {
      body(r);
    } catch (const std::exception& e) {
      std::strncpy(r.error, e.what(), sizeof r.error - 1);
    }
    send(r, fds[1]);
  }
  close(fds[1]);
  return result_of(pid, fds[0]);
}

// Runs `longattn report-round` on a round: a new program image, not a fork, so that every round
// gets its own address-space layout (where libraries, JIT code and buffers land), which a fork
// would share with the whole report and which moves one method's time by 10-20 %.
ChildResult run_in_new_program(const Settings& s, const std::string& method, std::int64_t n, double seconds) {
  int fds[2];
  if (pipe(fds) != 0) throw Error("report: cannot create a pipe");
  char seconds_text[32];
  std::snprintf(seconds_text, sizeof seconds_text, "%.17g", seconds);
  std::vector<std::string> args = {"longattn", "report-round", "--method", method, "--n", std::to_string(n),
                                   "--seconds", seconds_text, "--d", std::to_string(s.d),
                                   "--heads", std::to_string(s.heads), "--kernel", std::to_string(s.kernel),
                                   "--window", std::to_string(s.window), "--threads", std::to_string(s.threads),
                                   "--result-fd", std::to_string(fds[1])};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw Error("report: cannot fork");
  if (pid == 0) {
    close(fds[0]);
    execv("/proc/self/exe", argv.data());
    ChildResult r;
    std::strncpy(r.error, "cannot start /proc/self/exe for a round", sizeof r.error - 1);
    send(r, fds[1]);
  }
  close(fds[1]);
  return result_of(pid, fds[0]);
}

// A method at one n, ready to run: its inputs allocated, its primitives created.
struct Workload {
  std::function<void()> run;
  std::function<double()> flops, scratch_bytes;  // known once it has run
};

Workload attention_workload(const Settings& s, const std::string& method, std::int64_t n) {
  struct Buffers {
    bench::Tensor q, k, v;
    std::vector<float> out;
    AttentionStats stats;
    std::unique_ptr<bench::OneDnnAttention> baseline;  // method "materialized"
  };
  const std::int64_t H = s.heads, D = s.d / s.heads;
  auto b = std::make_shared<Buffers>(Buffers{bench::random_tensor(H * n * D, 1), bench::random_tensor(H * n * D, 2),
                                             bench::random_tensor(H * n * D, 3), std::vector<float>(H * n * D), {}, {}});
  const float *q = b->q.data(), *k = b->k.data(), *v = b->v.data();
  const auto qv = bhnd(q, 1, H, n, D), kv = bhnd(k, 1, H, n, D), vv = bhnd(v, 1, H, n, D);
  const auto ov = bhnd(b->out.data(), 1, H, n, D);
  AttentionOptions options;
  options.threads = s.threads;
  if (method == "causal") options.window = Window::causal();
  if (method == "window") options.window = {s.window, s.window};
  if (method == "linear") options.normalizer = Normalizer::linear;
  if (method == "materialized") {
    b->baseline = std::make_unique<bench::OneDnnAttention>(n, n, D, D, options, s.threads);
    const double flops = 2.0 * double(2 * D) * double(visible_pairs(n, n, options.window)) * double(H);
    return {[=] { b->baseline->run(qv, kv, vv, ov); }, [=] { return flops; },
            [=] { return double(b->baseline->scratch_bytes()); }};
  }
  return {[=] { b->stats = attention(qv, kv, vv, ov, options); }, [=] { return b->stats.flops; },
          [=] { return double(b->stats.scratch_bytes); }};
}

Workload make_workload(const Settings& s, const std::string& method, std::int64_t n) {
  if (method == "cnn" || method == "rnn" || method == "lstm") {
    std::shared_ptr<bench::SequenceBaseline> model = bench::make_sequence_baseline(method, n, s.d, s.kernel, s.threads);
    return {[=] { model->run(); }, [=] { return model->flops(); }, [] { return 0.0; }};
  }
  return attention_workload(s, method, n);
}

// Steal and total jiffies of every CPU, from the first line of /proc/stat.
std::pair<double, double> cpu_jiffies() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double field[8] = {}, total = 0;
  in >> cpu;
  for (double& f : field) in >> f, total += f;
  return {field[7], total};
}

// Every thread probes its core's FMA rate at once; the slowest core, times the threads, is the
// rate the step could count on. Timing each core on its own leaves out how long the pool takes
// to wake, which a probe of a few milliseconds would otherwise mostly measure.
double probe_gflops(int threads) {
  std::vector<double> rates(static_cast<std::size_t>(threads));
  std::vector<std::thread> probes;
  for (int t = 0; t < threads; ++t) {
    probes.emplace_back([&rates, t] { rates[t] = measure_fp32_peak(Isa::automatic, 1, 0.005).gflops; });
  }
  for (std::thread& p : probes) p.join();
  return threads * *std::min_element(rates.begin(), rates.end());
}

// Runs the workload once to warm it (a run of half a second or more counts as a timed run too:
// its first touch of memory is under 1 % of it), then in batches of at least a millisecond
// until the timed runs add up to `seconds`.
void time_runs(const Workload& w, double seconds, ChildResult& r) {
  using clock = std::chrono::steady_clock;
  auto timed = [&](int runs) {
    const auto start = clock::now();
    for (int i = 0; i < runs; ++i) w.run();
    return std::chrono::duration<double>(clock::now() - start).count();
  };
  const double first = timed(1);
  if (first >= 0.5) r.samples[r.sample_count++] = first, r.timed_seconds += first;
  const int batch = std::max(1, static_cast<int>(std::ceil(1e-3 / std::max(first, 1e-9))));
  while ((r.timed_seconds < seconds || r.sample_count == 0) && r.sample_count < kMaxSamples) {
    const double t = timed(batch);
    r.samples[r.sample_count++] = t / batch;
    r.timed_seconds += t;
  }
  r.flops = w.flops();
  r.scratch_bytes = w.scratch_bytes();
}

}  // namespace

double probe_read_gbps(int threads) { return bench::read_gbps(probe_buffer(), threads, 3); }

void measure_round_here(const Settings& s, const std::string& method, std::int64_t n, double seconds, int result_fd) {
  ChildResult r;
  try {
    // A small run first brings up the thread pools (every worker with its own malloc arena and
    // scratch) and the primitives' code, so the step's memory is its own.
    make_workload(s, method, 512).run();
    const double probe_before = probe_gflops(s.threads), read_before = probe_read_gbps(s.threads);
    const auto [steal_before, total_before] = cpu_jiffies();
    reset_peak_resident();
    const double resident_before = static_cast<double>(bench::status_bytes("VmRSS"));
    AllocationCounter::start();
    {
      const Workload w = make_workload(s, method, n);
      time_runs(w, seconds, r);
    }
    if (AllocationCounter::available()) r.allocated_bytes = static_cast<double>(AllocationCounter::peak_bytes());
    r.memory_bytes = std::max(0.0, static_cast<double>(bench::status_bytes("VmHWM")) - resident_before);
    const auto [steal_after, total_after] = cpu_jiffies();
    r.steal_fraction = total_after > total_before ? (steal_after - steal_before) / (total_after - total_before) : 0;
    r.probe_gflops = std::min(probe_before, probe_gflops(s.threads));
    r.read_gbps = std::min(read_before, probe_read_gbps(s.threads));
  } catch (const std::exception& e) {
    std::strncpy(r.error, e.what(), sizeof r.error - 1);
  }
  send(r, result_fd);
}

RoundResult measure_round(const Settings& s, const std::string& method, std::int64_t n, double seconds) {
  theory_of(method);  // rejects unknown names before starting a process
  const ChildResult c = run_in_new_program(s, method, n, seconds);
  RoundResult result;
  if (c.error[0] != '\0') {
    result.error = c.error;
    return result;
  }
  result.samples.assign(c.samples, c.samples + c.sample_count);
  result.timed_seconds = c.timed_seconds;
  result.flops = c.flops;
  result.memory_bytes = c.memory_bytes;
  result.allocated_bytes = c.allocated_bytes;
  result.scratch_bytes = c.scratch_bytes;
  result.probe_gflops = c.probe_gflops;
  result.read_gbps = c.read_gbps;
  result.steal_fraction = c.steal_fraction;
  return result;
}

void measure_machine_in_child(Settings& s) {
  const ChildResult r = run_in_child([&](ChildResult& c) {
    const PeakFlops peak = measure_fp32_peak(Isa::automatic, s.threads);
    c.flops = peak.gflops;
    c.read_gbps = probe_read_gbps(s.threads);
    std::strncpy(c.label, to_string(peak.isa).c_str(), sizeof c.label - 1);
  });
  if (r.error[0] != '\0') throw Error(std::string("report: peak probe failed: ") + r.error);
  s.isa = r.label;
  s.peak_gflops = r.flops;
  s.read_gbps = r.read_gbps;
}

}  // namespace longattn::report
