#include "tools/report/measure_point.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "bench/measure.hpp"
#include "bench/onednn_attention.hpp"
#include "bench/sequence_baselines.hpp"
#include "longattn/attention.hpp"
#include "longattn/error.hpp"
#include "longattn/machine.hpp"

namespace longattn::report {
namespace {

struct ChildResult {
  double values[3] = {0, 0, 0};  // seconds, flops (or gflops for the peak probe), memory bytes
  char label[64] = {};        // the peak probe's ISA
  char error[256] = {};
};

// Lowers the high-water mark to the current resident set: a forked child inherits its
// parent's mark, which would otherwise hide a small step's peak.
void reset_peak_resident() { std::ofstream("/proc/self/clear_refs") << "5"; }

// Runs `body` in a forked child and returns what it wrote. The parent never starts a thread
// pool, so forking is safe.
ChildResult run_in_child(const std::function<ChildResult()>& body) {
  int fds[2];
  if (pipe(fds) != 0) throw Error("report: cannot create a pipe");
  const pid_t pid = fork();
  if (pid < 0) throw Error("report: cannot fork");
  if (pid == 0) {
    close(fds[0]);
    ChildResult r;
    try {
      r = body();
    } catch (const std::exception& e) {
      std::strncpy(r.error, e.what(), sizeof r.error - 1);
    }
    const ssize_t written = write(fds[1], &r, sizeof r);
    _exit(written == sizeof r ? 0 : 1);
  }
  close(fds[1]);
  ChildResult r;
  const ssize_t got = read(fds[0], &r, sizeof r);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::strncpy(r.error, "the measuring process died (out of memory?)", sizeof r.error - 1);
  }
  return r;
}

// Quick points repeat until they add up to 0.3 s (15 runs at most).
double median_time(const std::function<void()>& fn, int repeats) { return bench::median_seconds(fn, repeats, 0.3, 15); }

// The step's memory: the high-water mark of the run minus what was resident before it, after
// a run at a small n brought up the thread pools (every worker with its own malloc arena and
// scratch) and the primitives' code.
ChildResult measured_step(const std::function<ChildResult(std::int64_t)>& step, std::int64_t n) {
  step(512);
  reset_peak_resident();
  const double before = static_cast<double>(bench::status_bytes("VmRSS"));
  ChildResult r = step(n);
  r.values[2] = std::max(0.0, static_cast<double>(bench::status_bytes("VmHWM")) - before);
  return r;
}

ChildResult measure_attention(const Settings& s, const std::string& method, std::int64_t n) {
  const std::int64_t H = s.heads, D = s.d / s.heads;
  const auto q = bench::random_tensor(H * n * D, 1), k = bench::random_tensor(H * n * D, 2),
             v = bench::random_tensor(H * n * D, 3);
  std::vector<float> out(q.size());
  const auto qv = bhnd(q.data(), 1, H, n, D), kv = bhnd(k.data(), 1, H, n, D), vv = bhnd(v.data(), 1, H, n, D);
  const auto ov = bhnd(out.data(), 1, H, n, D);
  AttentionOptions options;
  options.threads = s.threads;
  if (method == "causal") options.window = Window::causal();
  if (method == "window") options.window = {s.window, s.window};
  if (method == "linear") options.normalizer = Normalizer::linear;
  ChildResult r;
  if (method == "materialized") {
    bench::OneDnnAttention baseline(n, n, D, D, options, s.threads);
    r.values[0] = median_time([&] { baseline.run(qv, kv, vv, ov); }, s.repeats);
    r.values[1] = 2.0 * double(2 * D) * double(visible_pairs(n, n, options.window)) * double(H);
  } else {
    AttentionStats stats;
    r.values[0] = median_time([&] { stats = attention(qv, kv, vv, ov, options); }, s.repeats);
    r.values[1] = stats.flops;
  }
  return r;
}

}  // namespace

Point measure_point(const Settings& s, const std::string& method, std::int64_t n) {
  Point p;
  p.method = method;
  p.n = n;
  theory_of(method);  // rejects unknown names before forking
  if (method == "materialized" && n * n * 4 > s.materialized_max_bytes) {
    p.note = "skipped: the n×n score matrix exceeds --materialized-max-bytes";
    return p;
  }
  const ChildResult r = run_in_child([&] {
    return measured_step(
        [&](std::int64_t length) -> ChildResult {
          if (method == "cnn" || method == "rnn" || method == "lstm") {
            auto model = bench::make_sequence_baseline(method, length, s.d, s.kernel, s.threads);
            ChildResult c;
            c.values[0] = median_time([&] { model->run(); }, s.repeats);
            c.values[1] = model->flops();
            return c;
          }
          return measure_attention(s, method, length);
        },
        n);
  });
  if (r.error[0] != '\0') {
    p.note = std::string("failed: ") + r.error;
    return p;
  }
  p.measured = true;
  p.seconds = r.values[0];
  p.flops = r.values[1];
  p.memory_bytes = r.values[2];
  return p;
}

double peak_gflops_in_child(int threads, std::string& isa) {
  const ChildResult r = run_in_child([&] {
    const PeakFlops peak = measure_fp32_peak(Isa::automatic, threads);
    ChildResult c;
    c.values[0] = peak.gflops;
    std::strncpy(c.label, to_string(peak.isa).c_str(), sizeof c.label - 1);
    return c;
  });
  if (r.error[0] != '\0') throw Error(std::string("report: peak probe failed: ") + r.error);
  isa = r.label;
  return r.values[0];
}

}  // namespace longattn::report
