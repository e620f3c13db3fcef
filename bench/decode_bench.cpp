#include "bench/decode_bench.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "bench/measure.hpp"
#include "longattn/attention.hpp"
#include "longattn/machine.hpp"
#include "longattn/plan.hpp"

namespace longattn::bench {
namespace {

constexpr std::int64_t kChunk = 1024;  // tokens per append while the caches are filled

std::vector<float> random_values(std::int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (float& e : x) e = uniform(rng);
  return x;
}

// Bytes a decoding step reads of one sequence's cache at one layer.
std::int64_t bytes_read(const KvCacheConfig& c, std::int64_t context) {
  const std::int64_t element = c.type == CacheType::fp32 ? 4 : c.type == CacheType::bf16 ? 2 : 1;
  const std::int64_t scales = c.type == CacheType::int8 ? 8 : 0;
  return c.kv_heads * context * ((c.d + c.dv) * element + scales);
}

struct CacheUnderTest {
  KvCache cache;
  std::vector<SequenceId> ids;
  std::vector<double> seconds;
  bool qk_int8 = false;
};

// `batch` sequences of `context` tokens, appended a chunk at a time from one random chunk.
CacheUnderTest filled_cache(const DecodeBenchConfig& config, CacheType type, std::int64_t context,
                            const std::vector<float>& chunk) {
  KvCacheConfig c;
  c.layers = 1, c.kv_heads = config.kv_heads, c.d = config.d, c.page_tokens = config.page_tokens, c.type = type;
  CacheUnderTest t{KvCache(c), {}, {}};
  const auto rows = bhnd<const float>(chunk.data(), 1, config.kv_heads, kChunk, config.d);
  for (std::int64_t s = 0; s < config.batch; ++s) {
    t.ids.push_back(t.cache.add_sequence());
    for (std::int64_t done = 0; done < context; done += kChunk) {
      const auto part = narrow(rows, 2, 0, std::min(kChunk, context - done));
      t.cache.append(t.ids.back(), 0, part, part);
    }
  }
  return t;
}

DecodeContextResult run_context(const DecodeBenchConfig& config, std::int64_t context, const std::vector<float>& chunk,
                                const std::vector<float>& q, const AttentionOptions& options) {
  const std::int64_t S = config.batch, H = config.kv_heads, D = config.d, Hq = config.heads;
  std::vector<float> keys(static_cast<std::size_t>(S * H * context * D)), values(keys.size());
  for (std::int64_t row = 0; row < S * H * context; row += kChunk) {
    const std::int64_t rows = std::min(kChunk, S * H * context - row);
    std::copy_n(chunk.data(), rows * D, keys.data() + row * D);
    std::copy_n(chunk.data(), rows * D, values.data() + row * D);
  }
  std::vector<CacheUnderTest> caches;
  for (CacheType type : config.caches) caches.push_back(filled_cache(config, type, context, chunk));
  std::vector<float> out(static_cast<std::size_t>(S * Hq * D));
  const auto q_view = bhnd<const float>(q.data(), S, Hq, 1, D);
  const auto out_view = bhnd(out.data(), S, Hq, 1, D);
  const auto k_view = bhnd<const float>(keys.data(), S, H, context, D);
  const auto v_view = bhnd<const float>(values.data(), S, H, context, D);
  AttentionProblem problem;
  problem.batch = S, problem.q_heads = Hq, problem.kv_heads = H, problem.nq = 1, problem.nk = context, problem.d = D;
  const AttentionPlan plan(problem, options);
  std::vector<double> dense_seconds;
  auto time_dense = [&](int round) {
    const double s = seconds_of([&] { plan.run(q_view, k_view, v_view, out_view); });
    if (round > 0) dense_seconds.push_back(s);
  };
  for (int round = 0; round <= config.repeats; ++round) {  // round 0 warms up
    if (round % 2 == 0) time_dense(round);  // first in every other round: no step always follows another
    for (std::size_t i = 0; i < caches.size(); ++i) {
      CacheUnderTest& t = caches[round % 2 == 0 ? i : caches.size() - 1 - i];
      const double s = seconds_of([&] { t.qk_int8 = cached_attention(t.cache, 0, t.ids, q_view, out_view, options).qk_int8; });
      if (round > 0) t.seconds.push_back(s);
    }
    if (round % 2 == 1) time_dense(round);
  }
  DecodeContextResult result{context, median(dense_seconds), {}};
  const auto token = bhnd<const float>(chunk.data(), 1, H, 1, D);
  for (CacheUnderTest& t : caches) {
    DecodeCacheResult r;
    r.type = t.cache.config().type;
    r.seconds = median(t.seconds);
    r.qk_int8 = t.qk_int8;
    r.tokens_per_second = static_cast<double>(S) / r.seconds;
    r.bytes_read = S * bytes_read(t.cache.config(), context);
    r.gbps = static_cast<double>(r.bytes_read) / r.seconds * 1e-9;
    r.bytes_per_token = t.cache.memory().bytes_per_token;
    std::vector<double> appends;
    for (int i = 0; i < config.repeats; ++i) appends.push_back(seconds_of([&] { t.cache.append(t.ids[0], 0, token, token); }));
    r.append_microseconds = median(appends) * 1e6;
    result.caches.push_back(r);
  }
  return result;
}

}  // namespace

DecodeBenchResult run_decode_bench(const DecodeBenchConfig& config) {
  DecodeBenchResult result{config, resolve_isa(config.isa), read_gbps(config.threads, std::int64_t{1} << 30, 5), {}};
  AttentionOptions options;
  options.isa = config.isa, options.threads = config.threads, options.qk_precision = config.qk_precision;
  std::mt19937 rng(1);
  const std::vector<float> chunk = random_values(config.kv_heads * kChunk * config.d, rng);
  const std::vector<float> q = random_values(config.batch * config.heads * config.d, rng);
  for (std::int64_t context : config.contexts) result.contexts.push_back(run_context(config, context, chunk, q, options));
  return result;
}

}  // namespace longattn::bench
