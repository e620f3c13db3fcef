// The paged KvCache: attention over its pages equals attention() over the same keys bit for
// bit (fp32, bf16; int8 within 1e-5 of max |out| of attention() over its dequantized keys),
// on every ISA path and 1 and 2 threads, for random page sizes, lengths and forks; int8
// within its stated bound of fp32; bad input leaves the cache as it was.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check/attention_case.hpp"
#include "longattn/longattn.hpp"
#include "simd/kernel_table.hpp"

namespace {

using namespace longattn;

std::vector<float> random_values(std::int64_t n, std::mt19937& rng, float magnitude = 1.0f) {
  std::uniform_real_distribution<float> uniform(-magnitude, magnitude);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (float& e : x) e = uniform(rng);
  return x;
}

struct Outputs {
  std::vector<float> out, lse;
};

// A cache of `lengths` tokens per sequence at one layer, filled in random appends of 1 … 40
// tokens, with the fp32 rows each append was given.
struct FilledCache {
  KvCache cache;
  std::vector<SequenceId> ids;

  FilledCache(const KvCacheConfig& config, const std::vector<std::int64_t>& lengths, std::mt19937& rng)
      : cache(config) {
    const std::int64_t H = config.kv_heads, d = config.d, dv = config.dv == 0 ? config.d : config.dv;
    for (std::int64_t length : lengths) {
      const SequenceId id = cache.add_sequence();
      ids.push_back(id);
      for (std::int64_t done = 0; done < length;) {
        const std::int64_t t = std::min<std::int64_t>(length - done, 1 + rng() % 40);
        const std::vector<float> k = random_values(H * t * d, rng), v = random_values(H * t * dv, rng);
        cache.append(id, 0, bhnd<const float>(k.data(), 1, H, t, d), bhnd<const float>(v.data(), 1, H, t, dv));
        done += t;
      }
    }
  }
};

// attention() on the keys and values read() returns (bf16 caches: as bf16 tensors, the same
// values), one sequence at a time, as the cache's queries see them.
Outputs dense_attention(const KvCache& cache, const std::vector<SequenceId>& ids, const std::vector<float>& q,
                        std::int64_t q_heads, std::int64_t nq, const AttentionOptions& options) {
  const KvCacheConfig& c = cache.config();
  Outputs o{std::vector<float>(ids.size() * q_heads * nq * c.dv), std::vector<float>(ids.size() * q_heads * nq)};
  for (std::size_t s = 0; s < ids.size(); ++s) {
    const std::int64_t n = cache.length(ids[s], 0);
    std::vector<float> k(c.kv_heads * n * c.d), v(c.kv_heads * n * c.dv);
    cache.read(ids[s], 0, bhnd(k.data(), 1, c.kv_heads, n, c.d), bhnd(v.data(), 1, c.kv_heads, n, c.dv));
    const auto qs = bhnd(q.data() + s * q_heads * nq * c.d, 1, q_heads, nq, c.d);
    const auto os = bhnd(o.out.data() + s * q_heads * nq * c.dv, 1, q_heads, nq, c.dv);
    const auto ls = bhn(o.lse.data() + s * q_heads * nq, 1, q_heads, nq);
    if (c.type == CacheType::bf16) {
      const std::vector<bf16> kb(k.begin(), k.end()), vb(v.begin(), v.end());
      attention(qs, bhnd(kb.data(), 1, c.kv_heads, n, c.d), bhnd(vb.data(), 1, c.kv_heads, n, c.dv), os, options, ls);
    } else {
      attention(qs, bhnd<const float>(k.data(), 1, c.kv_heads, n, c.d), bhnd<const float>(v.data(), 1, c.kv_heads, n, c.dv),
                os, options, ls);
    }
  }
  return o;
}

Outputs paged_attention(const KvCache& cache, const std::vector<SequenceId>& ids, const std::vector<float>& q,
                        std::int64_t q_heads, std::int64_t nq, const AttentionOptions& options) {
  const KvCacheConfig& c = cache.config();
  const auto S = static_cast<std::int64_t>(ids.size());
  Outputs o{std::vector<float>(S * q_heads * nq * c.dv), std::vector<float>(S * q_heads * nq)};
  cached_attention(cache, 0, ids, bhnd(q.data(), S, q_heads, nq, c.d), bhnd(o.out.data(), S, q_heads, nq, c.dv),
                   options, bhn(o.lse.data(), S, q_heads, nq));
  return o;
}

KvCacheConfig cache_config(std::int64_t kv_heads, std::int64_t d, std::int64_t page, CacheType type = CacheType::fp32,
                           std::int64_t dv = 0, std::int64_t layers = 1) {
  KvCacheConfig c;
  c.layers = layers, c.kv_heads = kv_heads, c.d = d, c.dv = dv, c.page_tokens = page, c.type = type;
  return c;
}

// Options from a function that sets some fields.
template <class Set>
AttentionOptions with(Set set) {
  AttentionOptions o;
  set(o);
  return o;
}
const AttentionOptions kCausal = with([](AttentionOptions& o) { o.window = Window::causal(); });

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The largest |a - b| over the largest |b|; infinities must match.
double relative_gap(const std::vector<float>& a, const std::vector<float>& b) {
  double gap = 0, largest = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      gap = std::max(gap, a[i] == b[i] ? 0.0 : 1.0);
      continue;
    }
    gap = std::max(gap, std::abs(double(a[i]) - b[i]));
    largest = std::max(largest, std::abs(double(b[i])));
  }
  return largest > 0 ? gap / largest : gap;
}

// Paged against dense on every ISA path and 1 and 2 threads: bit for bit, except where the
// int8 kernels read the pages' int8 rows, which scale a row's products once where attention()
// multiplies each element by its scale first (within 1e-5 of max |out|; 2.3e-7 measured).
void check_bits(const FilledCache& filled, std::int64_t q_heads, std::int64_t nq, AttentionOptions options,
                std::mt19937& rng) {
  const std::vector<float> q = random_values(static_cast<std::int64_t>(filled.ids.size()) * q_heads * nq *
                                                 filled.cache.config().d, rng);
  for (Isa isa : check::runnable_isas()) {
    for (int threads : {1, 2}) {
      CAPTURE(to_string(isa));
      CAPTURE(threads);
      options.isa = isa, options.threads = threads;
      const Outputs paged = paged_attention(filled.cache, filled.ids, q, q_heads, nq, options);
      const Outputs dense = dense_attention(filled.cache, filled.ids, q, q_heads, nq, options);
      if (filled.cache.config().type == CacheType::int8) {
        CHECK(relative_gap(paged.out, dense.out) < 1e-5);
        CHECK(relative_gap(paged.lse, dense.lse) < 1e-5);
      } else {
        CHECK(same_bits(paged.out, dense.out));
        CHECK(same_bits(paged.lse, dense.lse));
      }
    }
  }
}

}  // namespace

TEST_CASE("cached attention equals attention() over the same keys, bit for bit (int8 within 1e-5)") {
  std::mt19937 rng(7);
  for (CacheType type : {CacheType::fp32, CacheType::bf16, CacheType::int8}) {
    for (std::int64_t page : {16, 32, 64, 128, 256}) {
      CAPTURE(to_string(type));
      CAPTURE(page);
      const KvCacheConfig config = cache_config(2, 64, page, type);
      const std::int64_t longest = 300 + rng() % 3000;
      const FilledCache filled(config, {longest, 1 + static_cast<std::int64_t>(rng() % 700), 5}, rng);
      check_bits(filled, 8, 1, {}, rng);                    // decoding
      check_bits(filled, 2, 3, kCausal, rng);  // a few tokens at once
    }
  }
}

TEST_CASE("cached attention: chunks of prefill, options, odd sizes") {
  std::mt19937 rng(11);
  const KvCacheConfig odd = cache_config(3, 33, 16, CacheType::fp32, 17);
  check_bits(FilledCache(odd, {400, 45}, rng), 6, 2, kCausal, rng);
  const KvCacheConfig bf16_cache = cache_config(2, 128, 64, CacheType::bf16);
  const FilledCache filled(bf16_cache, {2000, 700}, rng);
  check_bits(filled, 8, 40, kCausal, rng);  // a chunk: its pages copied once
  const std::vector<float> sinks{0.5f, -1.0f, 2.0f, 0.0f, 1.0f, -3.0f, 0.25f, 4.0f};
  check_bits(filled, 8, 1, with([&](AttentionOptions& o) { o.softcap = 30.0f, o.sinks = sinks; }), rng);
  check_bits(filled, 8, 4, with([](AttentionOptions& o) { o.window = {256, 0}, o.sink_keys = 4; }), rng);
  check_bits(filled, 8, 1, with([](AttentionOptions& o) { o.alibi = true; }), rng);
}

TEST_CASE("cached attention: bf16 queries as widened, a bf16 out as the fp32 one rounded; bad views write nothing") {
  std::mt19937 rng(19);
  for (CacheType type : {CacheType::fp32, CacheType::bf16, CacheType::int8}) {
    CAPTURE(to_string(type));
    const FilledCache filled(cache_config(2, 64, 32, type), {700, 90}, rng);
    for (std::int64_t nq : {1, 24}) {  // decoding, and a chunk whose pages are copied
      CAPTURE(nq);
      const std::int64_t S = 2, Hq = 8, d = 64, rows = S * Hq * nq;
      std::vector<bf16> q(rows * d);
      const std::vector<float> values = random_values(rows * d, rng);
      std::vector<float> widened(values.size());
      for (std::size_t i = 0; i < values.size(); ++i) q[i] = bf16(values[i]), widened[i] = static_cast<float>(q[i]);
      const AttentionOptions options = nq > 1 ? kCausal : AttentionOptions{};
      const Outputs fp32 = paged_attention(filled.cache, filled.ids, widened, Hq, nq, options);
      const auto q_bf16 = bhnd<const bf16>(q.data(), S, Hq, nq, d);
      std::vector<float> out(rows * d), lse(rows);
      const AttentionStats stats = cached_attention(filled.cache, 0, filled.ids, q_bf16, bhnd(out.data(), S, Hq, nq, d),
                                                    options, bhn(lse.data(), S, Hq, nq));
      CHECK(same_bits(out, fp32.out));
      CHECK(same_bits(lse, fp32.lse));
      CHECK(stats.scratch_bytes >= rows * d * 4);  // the widened queries
      // A bf16 out in [S, nq, Hq, d] (BNHD), from fp32 and from bf16 queries.
      std::vector<bf16> rounded(rows * d), rounded_from_bf16(rows * d);
      cached_attention(filled.cache, 0, filled.ids, bhnd<const float>(widened.data(), S, Hq, nq, d),
                       bnhd(rounded.data(), S, nq, Hq, d), options);
      cached_attention(filled.cache, 0, filled.ids, q_bf16, bnhd(rounded_from_bf16.data(), S, nq, Hq, d), options);
      bool same = true;
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t b = r / (Hq * nq), h = r / nq % Hq, i = r % nq;
        for (std::int64_t c = 0; c < d; ++c) {
          const bf16 expected(fp32.out[r * d + c]);
          const std::int64_t at = ((b * nq + i) * Hq + h) * d + c;
          same = same && rounded[at] == expected && rounded_from_bf16[at] == expected;
        }
      }
      CHECK(same);
    }
  }
  const FilledCache filled(cache_config(2, 16, 16), {40}, rng);
  std::vector<bf16> q(8 * 16, bf16(1.0f)), out(8 * 16, bf16(7.0f));
  CHECK_THROWS_WITH_AS(cached_attention(filled.cache, 0, filled.ids, bhnd<const bf16>(q.data(), 1, 8, 1, 16),
                                        bhnd(out.data(), 1, 4, 2, 16)),
                       doctest::Contains("out: expected [1, 8, 1, 16]"), Error);
  CHECK(std::all_of(out.begin(), out.end(), [](bf16 x) { return x == bf16(7.0f); }));
}

TEST_CASE("cached attention: forks share pages until one of them writes") {
  std::mt19937 rng(3);
  const KvCacheConfig config = cache_config(2, 32, 16, CacheType::fp32, 0, 2);
  FilledCache filled(config, {70}, rng);
  KvCache& cache = filled.cache;
  std::vector<float> k(2 * 10 * 32), v(2 * 10 * 32);
  cache.append(filled.ids[0], 1, bhnd<const float>(k.data(), 1, 2, 10, 32), bhnd<const float>(v.data(), 1, 2, 10, 32));
  const std::int64_t pages_before = cache.memory().pages;  // 5 at layer 0, 1 at layer 1
  CHECK(pages_before == 6);
  const SequenceId child = cache.fork(filled.ids[0]);
  CHECK(cache.memory().pages == pages_before);
  CHECK(cache.length(child, 0) == 70);
  std::vector<float> parent_k(2 * 70 * 32), parent_v(2 * 70 * 32);
  cache.read(filled.ids[0], 0, bhnd(parent_k.data(), 1, 2, 70, 32), bhnd(parent_v.data(), 1, 2, 70, 32));
  k = random_values(2 * 20 * 32, rng), v = random_values(2 * 20 * 32, rng);
  cache.append(child, 0, bhnd<const float>(k.data(), 1, 2, 20, 32), bhnd<const float>(v.data(), 1, 2, 20, 32));
  CHECK(cache.memory().pages == pages_before + 2);  // the shared last page copied, one more
  std::vector<float> again_k(parent_k.size()), again_v(parent_v.size());
  cache.read(filled.ids[0], 0, bhnd(again_k.data(), 1, 2, 70, 32), bhnd(again_v.data(), 1, 2, 70, 32));
  CHECK(same_bits(again_k, parent_k));
  CHECK(same_bits(again_v, parent_v));
  std::vector<float> child_k(2 * 90 * 32), child_v(2 * 90 * 32);
  cache.read(child, 0, bhnd(child_k.data(), 1, 2, 90, 32), bhnd(child_v.data(), 1, 2, 90, 32));
  CHECK(std::equal(parent_k.begin(), parent_k.begin() + 70 * 32, child_k.begin()));  // head 0's shared prefix
  CHECK(std::equal(k.begin(), k.begin() + 20 * 32, child_k.begin() + 70 * 32));      // and its own tokens
  filled.ids.push_back(child);
  check_bits(filled, 4, 1, {}, rng);
  cache.drop(filled.ids[0]);
  CHECK(cache.memory().pages == 7);  // the child's 6 pages at layer 0 and 1 at layer 1
  CHECK(cache.memory().reserved_bytes >= cache.memory().bytes);
  CHECK(cache.memory().reserved_bytes % (2 << 20) == 0);  // whole huge pages
  CHECK(cache.length(child, 0) == 90);
  cache.drop(child);
  CHECK(cache.memory().pages == 0);
  CHECK(cache.memory().tokens == 0);
  CHECK(cache.memory().reserved_bytes == 0);  // every slab given back
}

TEST_CASE("KvCache slabs: pages reused after a drop, memory given back when a slab empties") {
  std::mt19937 rng(13);
  KvCache cache(cache_config(8, 128, 256));  // pages of 2 MiB: 8 to a 16 MiB slab
  const std::vector<float> k = random_values(8 * 256 * 128, rng);
  const auto rows = bhnd<const float>(k.data(), 1, 8, 256, 128);
  std::vector<SequenceId> ids;
  for (int s = 0; s < 12; ++s) {  // a page each: two slabs
    ids.push_back(cache.add_sequence());
    cache.append(ids.back(), 0, rows, rows);
  }
  CHECK(cache.memory().pages == 12);
  CHECK(cache.memory().reserved_bytes == 32 << 20);
  for (int s = 8; s < 12; ++s) cache.drop(ids[s]);  // the second slab's pages
  CHECK(cache.memory().reserved_bytes == 16 << 20);
  cache.drop(ids[0]);
  const SequenceId again = cache.add_sequence();
  cache.append(again, 0, rows, rows);  // into the first slab's free page
  CHECK(cache.memory().reserved_bytes == 16 << 20);
  std::vector<float> back_k(k.size()), back_v(k.size());
  cache.read(again, 0, bhnd(back_k.data(), 1, 8, 256, 128), bhnd(back_v.data(), 1, 8, 256, 128));
  CHECK(same_bits(back_k, k));
  for (int s = 1; s < 8; ++s) cache.drop(ids[s]);
  cache.drop(again);
  CHECK(cache.memory().reserved_bytes == 0);
}

TEST_CASE("cached attention: RoPE turns keys once as appended and queries at their positions") {
  std::mt19937 rng(5);
  const std::int64_t H = 2, Hq = 4, n = 500, d = 64, nq = 3;
  KvCacheConfig config = cache_config(H, d, 32);
  config.rope.pairing = RopePairing::half;
  KvCache cache(config);
  const SequenceId id = cache.add_sequence();
  const std::vector<float> k = random_values(H * n * d, rng), v = random_values(H * n * d, rng);
  for (std::int64_t t0 = 0; t0 < n; t0 += 100) {  // five appends, each rotated from its own position
    cache.append(id, 0, narrow(bhnd<const float>(k.data(), 1, H, n, d), 2, t0, 100),
                 narrow(bhnd<const float>(v.data(), 1, H, n, d), 2, t0, 100));
  }
  const std::vector<float> q = random_values(Hq * nq * d, rng);
  std::vector<float> paged(Hq * nq * d), dense(Hq * nq * d);
  const std::vector<SequenceId> ids{id};
  cached_attention(cache, 0, ids, bhnd(q.data(), 1, Hq, nq, d), bhnd(paged.data(), 1, Hq, nq, d), kCausal);
  attention(bhnd(q.data(), 1, Hq, nq, d), bhnd<const float>(k.data(), 1, H, n, d), bhnd<const float>(v.data(), 1, H, n, d),
            bhnd(dense.data(), 1, Hq, nq, d), with([](AttentionOptions& o) {
              o.window = Window::causal(), o.rope.pairing = RopePairing::half;
            }));
  for (std::size_t i = 0; i < paged.size(); ++i) REQUIRE(std::fabs(paged[i] - dense[i]) <= 1e-5f);
}

TEST_CASE("int8 cache: within its bound of the fp32 keys, on random and on outlier channels") {
  std::mt19937 rng(13);
  const std::int64_t H = 2, Hq = 8, n = 4000, d = 128;
  for (bool outliers : {false, true}) {
    CAPTURE(outliers);
    std::vector<float> k = random_values(H * n * d, rng), v = random_values(H * n * d, rng);
    if (outliers) {  // a few channels 20× the rest, as LLMs' keys have
      for (std::int64_t row = 0; row < H * n; ++row) {
        for (std::int64_t channel : {3, 77}) k[row * d + channel] *= 20.0f;
      }
    }
    KvCache cache(cache_config(H, d, 128, CacheType::int8));
    const SequenceId id = cache.add_sequence();
    cache.append(id, 0, bhnd<const float>(k.data(), 1, H, n, d), bhnd<const float>(v.data(), 1, H, n, d));
    const std::vector<float> q = random_values(Hq * d, rng, 2.0f);
    std::vector<float> exact(Hq * d);
    const std::vector<SequenceId> ids{id};
    attention(bhnd(q.data(), 1, Hq, 1, d), bhnd<const float>(k.data(), 1, H, n, d), bhnd<const float>(v.data(), 1, H, n, d),
              bhnd(exact.data(), 1, Hq, 1, d));
    // With int8 scores the queries are quantized too (where the CPU has VNNI).
    for (QkPrecision precision : {QkPrecision::inputs, QkPrecision::int8}) {
      if (precision == QkPrecision::int8 && !check::int8_scores_available(Isa::avx512)) continue;
      CAPTURE(to_string(precision));
      AttentionOptions options;
      options.qk_precision = precision;
      if (precision == QkPrecision::int8) options.isa = Isa::avx512;  // its path, whatever LONGATTN_ISA says
      std::vector<float> paged(Hq * d);
      cached_attention(cache, 0, ids, bhnd(q.data(), 1, Hq, 1, d), bhnd(paged.data(), 1, Hq, 1, d), options);
      float most = 0, error = 0;
      for (std::size_t i = 0; i < exact.size(); ++i) {
        most = std::max(most, std::fabs(exact[i]));
        error = std::max(error, std::fabs(paged[i] - exact[i]));
      }
      MESSAGE("int8 cache, q·k " << to_string(precision) << ": max error / max |out| = " << error / most);
      // README "KV cache": the stated bounds. A per-token scale spans a token's outlier
      // channels, so its other channels keep fewer levels.
      CHECK(error <= (outliers ? 1e-1f : 1e-2f) * most);
    }
  }
}

TEST_CASE("int8 cache with int8 scores: int8 queries against its keys, within their bound, any thread count") {
  if (!simd::cpu_has_avx512_vnni()) return;
  std::mt19937 rng(5);
  for (std::int64_t d : {1, 5, 64, 100, 128, 200}) {
    for (std::int64_t q_heads : {2, 4, 8, 10}) {  // 1, 2, 4 and 5 query rows per kv head
      CAPTURE(d);
      CAPTURE(q_heads);
      const FilledCache filled(cache_config(2, d, 64, CacheType::int8), {300 + static_cast<std::int64_t>(rng() % 900), 7},
                               rng);
      const std::vector<float> q = random_values(2 * q_heads * d, rng);
      AttentionOptions options;
      options.isa = Isa::avx512, options.qk_precision = QkPrecision::int8;
      const Outputs dense = dense_attention(filled.cache, filled.ids, q, q_heads, 1, {});
      std::vector<Outputs> runs;
      for (int threads : {1, 2}) {
        options.threads = threads;
        Outputs o{std::vector<float>(dense.out.size()), std::vector<float>(dense.lse.size())};
        const AttentionStats stats =
            cached_attention(filled.cache, 0, filled.ids, bhnd(q.data(), 2, q_heads, 1, d), bhnd(o.out.data(), 2, q_heads, 1, d),
                             options, bhn(o.lse.data(), 2, q_heads, 1));
        CHECK(stats.qk_int8);
        // README "int8 scores": bf16's tolerance on out, the scores' rounding on lse.
        CHECK(relative_gap(o.out, dense.out) < 2e-2);
        CHECK(relative_gap(o.lse, dense.lse) < 2e-2);
        runs.push_back(std::move(o));
      }
      CHECK(same_bits(runs[0].out, runs[1].out));
      CHECK(same_bits(runs[0].lse, runs[1].lse));
    }
  }
}

TEST_CASE("KvCache: bad input is an Error naming it, the cache unchanged") {
  CHECK_THROWS_WITH_AS(KvCache(cache_config(1, 8, 48)), doctest::Contains("page_tokens"), Error);
  CHECK_THROWS_WITH_AS(KvCache(cache_config(1, 8, 8)), doctest::Contains("page_tokens"), Error);
  CHECK_THROWS_WITH_AS(KvCache(cache_config(0, 8, 16)), doctest::Contains("kv_heads"), Error);
  KvCache cache(cache_config(1, 8, 16, CacheType::int8));
  const SequenceId id = cache.add_sequence();
  std::vector<float> row(8, 1.0f);
  const auto one = bhnd<const float>(row.data(), 1, 1, 1, 8);
  cache.append(id, 0, one, one);
  std::vector<float> bad(8, 1.0f);
  bad[5] = std::numeric_limits<float>::quiet_NaN();
  const auto nan_row = bhnd<const float>(bad.data(), 1, 1, 1, 8);
  CHECK_THROWS_WITH_AS(cache.append(id, 0, one, nan_row), doctest::Contains("v[0, 0, 0, 5] is not finite"), Error);
  CHECK(cache.length(id, 0) == 1);
  CHECK_THROWS_WITH_AS(cache.append(id, 0, bhnd<const float>(row.data(), 1, 1, 1, 4), one), doctest::Contains("k must be"), Error);
  CHECK_THROWS_WITH_AS(cache.append(id, 1, one, one), doctest::Contains("layer 1"), Error);
  cache.drop(id);
  CHECK_THROWS_WITH_AS(cache.append(id, 0, one, one), doctest::Contains("not in the cache"), Error);
  CHECK_THROWS_WITH_AS(cache.fork(id), doctest::Contains("not in the cache"), Error);
  CHECK(cache.memory().pages == 0);

  const SequenceId live = cache.add_sequence();
  cache.append(live, 0, one, one);
  std::vector<float> q(16), out(16);
  const std::vector<SequenceId> ids{live};
  const auto q2 = bhnd<const float>(q.data(), 1, 1, 2, 8);
  const auto out2 = bhnd(out.data(), 1, 1, 2, 8);
  CHECK_THROWS_WITH_AS(cached_attention(cache, 0, ids, q2, out2), doctest::Contains("holds 1"), Error);
  const auto q1 = narrow(q2, 2, 0, 1);
  const auto out1 = narrow(out2, 2, 0, 1);
  const std::int64_t lengths[] = {1};
  CHECK_THROWS_WITH_AS(cached_attention(cache, 0, ids, q1, out1, with([&](AttentionOptions& o) { o.key_lengths = lengths; })), doctest::Contains("key_lengths"), Error);
  CHECK_THROWS_WITH_AS(cached_attention(cache, 0, ids, q1, out1, with([](AttentionOptions& o) { o.rope.pairing = RopePairing::half; })), doctest::Contains("options.rope"), Error);
  CHECK_THROWS_WITH_AS(cached_attention(cache, 0, ids, q1, out1, with([](AttentionOptions& o) { o.softcap = -1.0f; })), doctest::Contains("softcap"), Error);
  const std::vector<SequenceId> gone{id};
  CHECK_THROWS_WITH_AS(cached_attention(cache, 0, gone, q1, out1), doctest::Contains("not in the cache"), Error);
}
