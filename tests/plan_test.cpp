// The public plan: the same bits as attention(), any number of runs, from many threads at
// once, and errors that name what differs from what it was made for.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "longattn/longattn.hpp"

using namespace longattn;

namespace {

struct Inputs {
  AttentionProblem p;
  std::vector<float> q, k, v;

  explicit Inputs(AttentionProblem problem, unsigned seed = 1) : p(problem) {
    if (p.dv == 0) p.dv = p.d;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    auto fill = [&](std::vector<float>& x, std::int64_t n) {
      x.resize(static_cast<std::size_t>(n));
      for (float& e : x) e = normal(rng);
    };
    fill(q, p.batch * p.q_heads * p.nq * p.d);
    fill(k, p.batch * p.kv_heads * p.nk * p.d);
    fill(v, p.batch * p.kv_heads * p.nk * p.dv);
  }
  HeadsView<const float> qv() const { return bhnd<const float>(q.data(), p.batch, p.q_heads, p.nq, p.d); }
  HeadsView<const float> kv() const { return bhnd<const float>(k.data(), p.batch, p.kv_heads, p.nk, p.d); }
  HeadsView<const float> vv() const { return bhnd<const float>(v.data(), p.batch, p.kv_heads, p.nk, p.dv); }
  std::vector<float> out() const { return std::vector<float>(static_cast<std::size_t>(p.batch * p.q_heads * p.nq * p.dv)); }
  HeadsView<float> out_view(std::vector<float>& o) const { return bhnd(o.data(), p.batch, p.q_heads, p.nq, p.dv); }
};

AttentionOptions with_window(Window w, Normalizer normalizer = Normalizer::softmax) {
  AttentionOptions o;
  o.window = w;
  o.normalizer = normalizer;
  return o;
}

}  // namespace

TEST_CASE("a plan's runs give attention()'s bits, run after run, for every schedule") {
  struct Case {
    AttentionProblem problem;
    AttentionOptions options;
    const char* schedule;
  };
  const Case cases[] = {
      {{.q_heads = 4, .kv_heads = 2, .nq = 1, .nk = 3000, .d = 64}, {}, "key_splits"},
      {{.q_heads = 2, .nq = 1000, .nk = 1000, .d = 32}, with_window({40, 40}), "bands"},
      {{.batch = 2, .q_heads = 2, .nq = 300, .nk = 700, .d = 48, .dv = 24}, with_window(Window::causal()), "chunks"},
      {{.q_heads = 2, .nq = 200, .nk = 200, .d = 16}, with_window(Window::causal(), Normalizer::linear), "linear"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.schedule);
    for (int threads : {1, 2}) {
      CAPTURE(threads);
      AttentionOptions options = c.options;
      options.threads = threads;
      const Inputs in(c.problem);
      const AttentionPlan plan(in.p, options);
      CHECK(plan.schedule().kind == c.schedule);
      CHECK(plan.problem().dv == (c.problem.dv == 0 ? c.problem.d : c.problem.dv));
      std::vector<float> expected = in.out(), first = in.out(), second = in.out();
      attention(in.qv(), in.kv(), in.vv(), in.out_view(expected), options);
      const AttentionStats stats = plan.run(in.qv(), in.kv(), in.vv(), in.out_view(first));
      plan.run(in.qv(), in.kv(), in.vv(), in.out_view(second));
      CHECK(first == expected);
      CHECK(second == expected);
      CHECK(stats.flops > 0);
      if (std::string(c.schedule) != "linear") CHECK(plan.kept_scratch_bytes() > 0);
    }
  }
}

TEST_CASE("one plan run from four threads at once: every run its own scratch, every result right") {
  const Inputs base({.q_heads = 8, .kv_heads = 2, .nq = 1, .nk = 5000, .d = 64}, 7);
  AttentionOptions one_thread;  // each run on one thread, four runs at once
  one_thread.threads = 1;
  const AttentionPlan plan(base.p, one_thread);
  std::vector<Inputs> inputs;
  std::vector<std::vector<float>> expected, actual;
  for (unsigned t = 0; t < 4; ++t) {
    inputs.emplace_back(base.p, 100 + t);
    expected.push_back(inputs.back().out());
    attention(inputs.back().qv(), inputs.back().kv(), inputs.back().vv(), inputs.back().out_view(expected.back()));
    actual.push_back(inputs.back().out());
  }
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        plan.run(inputs[t].qv(), inputs[t].kv(), inputs[t].vv(), inputs[t].out_view(actual[t]));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (std::size_t t = 0; t < 4; ++t) CHECK(actual[t] == expected[t]);
}

TEST_CASE("a plan run on views of another shape or type is an Error naming the field") {
  const Inputs in({.q_heads = 4, .kv_heads = 2, .nq = 8, .nk = 16, .d = 16});
  const AttentionPlan plan(in.p);
  std::vector<float> out = in.out();
  auto message = [](auto&& call) -> std::string {
    try {
      call();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  const Inputs fewer_queries({.q_heads = 4, .kv_heads = 2, .nq = 4, .nk = 16, .d = 16});
  std::vector<float> out4 = fewer_queries.out();
  CHECK(message([&] { plan.run(fewer_queries.qv(), in.kv(), in.vv(), fewer_queries.out_view(out4)); }) ==
        "attention: q.shape[2] (tokens): expected 8 (the plan's), got 4");
  const Inputs more_keys({.q_heads = 4, .kv_heads = 2, .nq = 8, .nk = 17, .d = 16});
  CHECK(message([&] { plan.run(in.qv(), more_keys.kv(), more_keys.vv(), in.out_view(out)); }) ==
        "attention: k.shape[2] (tokens): expected 16 (the plan's), got 17");
  std::vector<bf16> k16(in.k.size()), v16(in.v.size());
  CHECK(message([&] {
          plan.run(in.qv(), bhnd<const bf16>(k16.data(), 1, 2, 16, 16), bhnd<const bf16>(v16.data(), 1, 2, 16, 16),
                   in.out_view(out));
        }) == "attention: k: the plan is for f32 keys and values, got bf16");
  std::vector<float> lse(4 * 8);
  const AttentionPlan sigmoid(in.p, with_window(Window::full(), Normalizer::sigmoid));
  CHECK(message([&] { sigmoid.run(in.qv(), in.kv(), in.vv(), in.out_view(out), bhn(lse.data(), 1, 4, 8)); }) ==
        "attention: lse: defined for the softmax normalizer only, got sigmoid");
}

TEST_CASE("a plan checks its problem and options once, when it is made") {
  auto message = [](const AttentionProblem& p, const AttentionOptions& o = {}) -> std::string {
    try {
      AttentionPlan plan(p, o);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  CHECK(message({.q_heads = 4, .kv_heads = 3, .nq = 8, .nk = 8, .d = 16}) ==
        "attention: problem.kv_heads: expected a divisor of q_heads (4, grouped-query attention), got 3");
  CHECK(message({.nq = 8, .nk = 8, .d = 0}) == "attention: problem.d: expected >= 1, got 0");
  CHECK(message({.nq = 8, .nk = 8, .d = 16, .q_type = DType::bf16}) ==
        "attention: problem.kv_type: expected bf16 with bf16 queries (bf16 q with fp32 k and v is not a pairing), got f32");
  CHECK(message({.nq = 8, .nk = 8, .d = 16}, with_window({-2, 0})) ==
        "attention: window: expected left and right >= -1 (-1 = unbounded), got (-2, 0)");
  const std::vector<std::int64_t> lengths = {9};
  AttentionOptions too_long;
  too_long.key_lengths = lengths;
  CHECK(message({.nq = 8, .nk = 8, .d = 16}, too_long) == "attention: key_lengths[0]: expected 0 ... 8 (k's tokens), got 9");
}

TEST_CASE("a plan for bf16 inputs runs them as attention() does") {
  const Inputs in({.q_heads = 2, .kv_heads = 2, .nq = 300, .nk = 300, .d = 32});
  auto rounded = [](const std::vector<float>& x) {
    std::vector<bf16> y;
    for (float e : x) y.push_back(bf16(e));
    return y;
  };
  const std::vector<bf16> q16 = rounded(in.q), k16 = rounded(in.k), v16 = rounded(in.v);
  const auto q = bhnd<const bf16>(q16.data(), 1, 2, 300, 32), k = bhnd<const bf16>(k16.data(), 1, 2, 300, 32),
             v = bhnd<const bf16>(v16.data(), 1, 2, 300, 32);
  AttentionProblem problem = in.p;
  problem.q_type = problem.kv_type = DType::bf16;
  const AttentionPlan plan(problem, with_window(Window::causal()));
  std::vector<float> expected = in.out(), actual = in.out();
  attention(q, k, v, in.out_view(expected), with_window(Window::causal()));
  plan.run(q, k, v, in.out_view(actual));
  CHECK(actual == expected);
}
