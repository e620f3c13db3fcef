// Many application threads at once: attention() and one plan's run give each caller the bits
// it gets alone; so does one layer's forward.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "longattn/longattn.hpp"

using namespace longattn;

namespace {

constexpr int kThreads = 8;

std::vector<float> random_floats(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n);
  for (float& e : x) e = normal(rng);
  return x;
}

// Runs job(t) on kThreads threads at once, each `rounds` times.
template <class Job>
void on_threads_at_once(int rounds, Job job) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ++ready;
      while (ready < kThreads) std::this_thread::yield();  // start together
      for (int r = 0; r < rounds; ++r) job(t);
    });
  }
  for (std::thread& thread : threads) thread.join();
}

// One attention problem per thread: a different shape and mode each.
struct Problem {
  std::int64_t heads, kv_heads, nq, nk, d;
  Window window;
  std::vector<float> q, k, v, out, lse;

  Problem(int t)
      : heads(4), kv_heads(t % 2 == 0 ? 4 : 2), nq(t % 3 == 0 ? 1 : 97 + 40 * t), nk(300 + 50 * t), d(t % 2 == 0 ? 64 : 40),
        window(t % 4 == 1 ? Window::causal() : t % 4 == 2 ? Window{32, 32} : Window::full()),
        q(random_floats(heads * nq * d, 10 + t)), k(random_floats(kv_heads * nk * d, 20 + t)),
        v(random_floats(kv_heads * nk * d, 30 + t)), out(heads * nq * d), lse(heads * nq) {}
  AttentionOptions options(int threads) const {
    AttentionOptions o;
    o.window = window;
    o.threads = threads;
    return o;
  }
  AttentionStats run(const AttentionOptions& o, std::vector<float>& to, std::vector<float>& lse_to) const {
    return attention(bhnd<const float>(q.data(), 1, heads, nq, d), bhnd<const float>(k.data(), 1, kv_heads, nk, d),
                     bhnd<const float>(v.data(), 1, kv_heads, nk, d), bhnd(to.data(), 1, heads, nq, d), o,
                     bhn(lse_to.data(), 1, heads, nq));
  }
};

}  // namespace

namespace {

// library_threads: each call's own TBB threads (0: every core), or -1 for 0, 1 and 2 by turns.
void attention_from_threads_at_once(int library_threads) {
  std::vector<Problem> problems;
  for (int t = 0; t < kThreads; ++t) problems.emplace_back(t);
  std::vector<std::vector<float>> alone(kThreads), alone_lse(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    alone[t] = problems[t].out, alone_lse[t] = problems[t].lse;
    problems[t].run(problems[t].options(1), alone[t], alone_lse[t]);
  }
  std::vector<int> wrong(kThreads, 0);
  on_threads_at_once(10, [&](int t) {
    Problem& p = problems[t];
    p.run(p.options(library_threads < 0 ? t % 3 : library_threads), p.out, p.lse);
    if (p.out != alone[t] || p.lse != alone_lse[t]) ++wrong[t];
  });
  for (int t = 0; t < kThreads; ++t) CHECK(wrong[t] == 0);
}

}  // namespace

TEST_CASE("attention() from 8 threads at once: each caller's bits as alone") {
  attention_from_threads_at_once(-1);  // each call on every core, 1 or 2 threads of its own
}

namespace {

// One plan run by every thread at once, its library work on library_threads threads.
void one_plan_from_threads_at_once(int library_threads) {
  for (Window window : {Window::full(), Window{16, 16}}) {
    for (std::int64_t nq : {1, 200}) {
      CAPTURE(nq);
      const std::int64_t heads = 4, nk = 900, d = 32;
      AttentionOptions options;
      options.window = window;
      options.threads = library_threads;
      const AttentionPlan plan({.q_heads = heads, .kv_heads = heads, .nq = nq, .nk = nk, .d = d}, options);
      const std::vector<float> k = random_floats(heads * nk * d, 2), v = random_floats(heads * nk * d, 3);
      std::vector<std::vector<float>> q(kThreads), alone(kThreads), out(kThreads);
      for (int t = 0; t < kThreads; ++t) {
        q[t] = random_floats(heads * nq * d, 100 + t);
        alone[t].resize(heads * nq * d), out[t].resize(heads * nq * d);
        attention(bhnd<const float>(q[t].data(), 1, heads, nq, d), bhnd<const float>(k.data(), 1, heads, nk, d),
                  bhnd<const float>(v.data(), 1, heads, nk, d), bhnd(alone[t].data(), 1, heads, nq, d), options);
      }
      std::vector<int> wrong(kThreads, 0);
      on_threads_at_once(10, [&](int t) {
        plan.run(bhnd<const float>(q[t].data(), 1, heads, nq, d), bhnd<const float>(k.data(), 1, heads, nk, d),
                 bhnd<const float>(v.data(), 1, heads, nk, d), bhnd(out[t].data(), 1, heads, nq, d));
        if (out[t] != alone[t]) ++wrong[t];
      });
      for (int t = 0; t < kThreads; ++t) CHECK(wrong[t] == 0);
    }
  }
}

}  // namespace

TEST_CASE("one plan run from 8 threads at once: every run right, for each schedule") {
  one_plan_from_threads_at_once(0);
}

// Each call on its caller's thread alone: the application threads are all the concurrency
// there is (scripts/test.sh runs this case and the layer's under ThreadSanitizer, whose view
// stops at TBB's uninstrumented workers).
TEST_CASE("attention() and one plan from 8 threads at once, each call on its caller's thread") {
  attention_from_threads_at_once(1);
  one_plan_from_threads_at_once(1);
}

TEST_CASE("one layer's forward from 8 threads at once: each call the bits it gets alone") {
  const std::int64_t E = 64, H = 4, N = 50;
  const std::vector<float> wq = random_floats(E * E, 1), wk = random_floats(E * E, 2), wv = random_floats(E * E, 3),
                           wo = random_floats(E * E, 4), x = random_floats(N * E, 5);
  MultiHeadConfig config;
  config.embed_dim = E, config.heads = H;
  config.positions = AbsolutePositions::sinusoidal;  // a table the layer grows at its first call
  config.attention.threads = 1;
  MultiHeadWeights w;
  w.wq = {wq.data(), {E, E}, {E, 1}}, w.wk = {wk.data(), {E, E}, {E, 1}}, w.wv = {wv.data(), {E, E}, {E, 1}};
  w.wo = {wo.data(), {E, E}, {E, 1}};
  const TensorView<const float, 3> xv{x.data(), {1, N, E}, {N * E, E, 1}};
  std::vector<float> alone(N * E);
  MultiHeadSelfAttention(config, w).forward(xv, {alone.data(), {1, N, E}, {N * E, E, 1}});

  const MultiHeadSelfAttention shared(config, w);
  std::vector<std::vector<float>> y(kThreads, std::vector<float>(N * E));
  std::atomic<int> wrong{0};
  on_threads_at_once(20, [&](int t) {
    // Rows from 1 to N: calls of different shapes (their own matmuls) at the same time.
    const std::int64_t rows = 1 + (t * 7) % N;
    std::vector<float> part(rows * E);
    shared.forward({x.data(), {1, rows, E}, {rows * E, E, 1}}, {part.data(), {1, rows, E}, {rows * E, E, 1}});
    shared.forward(xv, {y[t].data(), {1, N, E}, {N * E, E, 1}});
    if (y[t] != alone) ++wrong;
  });
  CHECK(wrong == 0);

  // A layer per thread: every call right.
  std::atomic<int> wrong_own{0};
  on_threads_at_once(1, [&](int t) {
    MultiHeadSelfAttention own(config, w);
    for (int r = 0; r < 5; ++r) {
      own.forward(xv, {y[t].data(), {1, N, E}, {N * E, E, 1}});
      if (y[t] != alone) ++wrong_own;
    }
  });
  CHECK(wrong_own == 0);
}
