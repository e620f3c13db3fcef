// The multi-head layer serving from a KvCache: prefill chunks and decoding steps of several
// sequences of different lengths give the rows forward() gives on each whole sequence
// (fp32 within 1e-5 of max |y|, 2.1e-7 measured; bf16 and int8 caches and a bf16 layer
// within 2e-2), with RoPE, grouped heads and absolute positions; bad calls throw and leave
// the cache as it was.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "longattn/longattn.hpp"
#include "longattn/multi_head.hpp"

using namespace longattn;

namespace {

std::vector<float> random_values(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> x(n);
  for (float& v : x) v = u(rng);
  return x;
}

TensorView<const float, 2> matrix(const std::vector<float>& w, std::int64_t rows, std::int64_t cols) {
  return {w.data(), {rows, cols}, {cols, 1}};
}

// A causal layer of E = 64, 8 query heads over 2 kv heads of D = 8, random weights.
struct Layer {
  static constexpr std::int64_t E = 64, Hq = 8, Hkv = 2, D = 8;
  std::vector<float> wq, wk, wv, wo, bq, bk, bv, bo, table;
  MultiHeadConfig config;

  Layer(std::mt19937& rng, AbsolutePositions positions, RopePairing rope) {
    const float s = 1.0f / std::sqrt(float(E));
    wq = random_values(Hq * D * E, rng, s), wk = random_values(Hkv * D * E, rng, s);
    wv = random_values(Hkv * D * E, rng, s), wo = random_values(E * Hq * D, rng, s);
    bq = random_values(Hq * D, rng, 0.1f), bk = random_values(Hkv * D, rng, 0.1f);
    bv = random_values(Hkv * D, rng, 0.1f), bo = random_values(E, rng, 0.1f);
    table = random_values(512 * E, rng, 0.5f);
    config.embed_dim = E, config.heads = Hq, config.kv_heads = Hkv, config.positions = positions;
    config.attention.window = Window::causal();
    config.attention.rope.pairing = rope;
  }
  MultiHeadSelfAttention make() const {
    MultiHeadWeights w;
    w.wq = matrix(wq, Hq * D, E), w.wk = matrix(wk, Hkv * D, E), w.wv = matrix(wv, Hkv * D, E);
    w.wo = matrix(wo, E, Hq * D);
    w.bq = bq, w.bk = bk, w.bv = bv, w.bo = bo;
    if (config.positions == AbsolutePositions::learned) w.position_table = matrix(table, 512, E);
    return MultiHeadSelfAttention(config, w);
  }
  KvCacheConfig cache(CacheType type, std::int64_t page) const {
    KvCacheConfig c;
    c.kv_heads = Hkv, c.d = D, c.page_tokens = page, c.type = type, c.rope = config.attention.rope;
    return c;
  }
};

// forward() on each whole sequence, [N, E] row-major.
std::vector<float> whole(const MultiHeadSelfAttention& layer, const std::vector<float>& x, std::int64_t n) {
  std::vector<float> y(x.size());
  layer.forward({x.data(), {1, n, Layer::E}, {n * Layer::E, Layer::E, 1}}, {y.data(), {1, n, Layer::E}, {n * Layer::E, Layer::E, 1}});
  return y;
}

// Two sequences of 61 and 23 tokens: a prefill chunk each (37 and 5 tokens, one call each),
// then steps of T tokens for both at once; every row of y against forward()'s.
double decode_gap(const Layer& spec, CacheType type, std::int64_t page, std::int64_t T, std::mt19937& rng) {
  const MultiHeadSelfAttention layer = spec.make();
  const std::int64_t E = Layer::E, lengths[2] = {61, 23}, prefill[2] = {37, 5};
  const std::vector<float> xs[2] = {random_values(lengths[0] * E, rng), random_values(lengths[1] * E, rng)};
  const std::vector<float> expected[2] = {whole(layer, xs[0], lengths[0]), whole(layer, xs[1], lengths[1])};
  KvCache cache(spec.cache(type, page));
  const SequenceId ids[2] = {cache.add_sequence(), cache.add_sequence()};
  double gap = 0, largest = 0;
  auto compare = [&](int s, const float* y, std::int64_t first, std::int64_t rows) {
    for (std::int64_t i = 0; i < rows * E; ++i) {
      gap = std::max(gap, double(std::abs(y[i] - expected[s][first * E + i])));
      largest = std::max(largest, double(std::abs(expected[s][first * E + i])));
    }
  };
  for (int s = 0; s < 2; ++s) {
    std::vector<float> y(prefill[s] * E);
    layer.decode({xs[s].data(), {1, prefill[s], E}, {prefill[s] * E, E, 1}}, {y.data(), {1, prefill[s], E}, {prefill[s] * E, E, 1}},
                 cache, 0, std::span(ids + s, 1));
    compare(s, y.data(), 0, prefill[s]);
  }
  std::int64_t done[2] = {prefill[0], prefill[1]};
  while (done[1] + T <= lengths[1]) {  // both sequences a step at a time, in one call
    std::vector<float> x(2 * T * E), y(2 * T * E);
    for (int s = 0; s < 2; ++s) std::copy_n(xs[s].data() + done[s] * E, T * E, x.data() + s * T * E);
    layer.decode({x.data(), {2, T, E}, {T * E, E, 1}}, {y.data(), {2, T, E}, {T * E, E, 1}}, cache, 0, ids);
    for (int s = 0; s < 2; ++s) {
      compare(s, y.data() + s * T * E, done[s], T);
      done[s] += T;
    }
  }
  CHECK(cache.length(ids[1], 0) == done[1]);
  return gap / largest;
}

}  // namespace

TEST_CASE("decode: prefill chunks and steps over a KvCache give forward()'s rows") {
  std::mt19937 rng(21);
  for (AbsolutePositions positions : {AbsolutePositions::none, AbsolutePositions::sinusoidal, AbsolutePositions::learned}) {
    for (RopePairing rope : {RopePairing::none, RopePairing::half}) {
      CAPTURE(static_cast<int>(positions));
      CAPTURE(static_cast<int>(rope));
      const Layer spec(rng, positions, rope);
      CHECK(decode_gap(spec, CacheType::fp32, 16, 1, rng) < 1e-5);
      CHECK(decode_gap(spec, CacheType::fp32, 32, 3, rng) < 1e-5);
    }
  }
  const Layer spec(rng, AbsolutePositions::none, RopePairing::half);
  CHECK(decode_gap(spec, CacheType::bf16, 16, 1, rng) < 2e-2);  // 2.2e-3 measured
  CHECK(decode_gap(spec, CacheType::int8, 16, 2, rng) < 2e-2);  // 4e-3 measured
  Layer half(rng, AbsolutePositions::sinusoidal, RopePairing::half);  // a bf16 layer: its own rounding both ways
  half.config.precision = DType::bf16;
  CHECK(decode_gap(half, CacheType::fp32, 32, 1, rng) < 2e-2);
  CHECK(decode_gap(half, CacheType::bf16, 32, 2, rng) < 2e-2);
}

TEST_CASE("decode: bad calls throw Error naming the problem and leave the cache as it was") {
  std::mt19937 rng(22);
  const Layer spec(rng, AbsolutePositions::none, RopePairing::half);
  const std::int64_t E = Layer::E;
  std::vector<float> x = random_values(2 * E, rng), y(2 * E);
  const TensorView<const float, 3> x1{x.data(), {1, 2, E}, {2 * E, E, 1}};
  const TensorView<float, 3> y1{y.data(), {1, 2, E}, {2 * E, E, 1}};
  // One call that must throw an Error whose text holds `phrase`, the sequence's length kept.
  auto throws_unchanged = [&](const MultiHeadSelfAttention& layer, KvCache& cache, std::int64_t layer_index,
                              SequenceId id, const std::string& phrase) {
    const std::int64_t before = cache.contains(id) ? cache.length(id, 0) : -1;
    CHECK_THROWS_WITH_AS(layer.decode(x1, y1, cache, layer_index, std::span(&id, 1)), doctest::Contains(phrase.c_str()), Error);
    if (before >= 0) CHECK(cache.length(id, 0) == before);
  };
  const MultiHeadSelfAttention layer = spec.make();
  KvCache cache(spec.cache(CacheType::fp32, 16));
  const SequenceId id = cache.add_sequence();
  const SequenceId twice[2] = {id, id};
  CHECK_THROWS_WITH_AS(layer.decode({x.data(), {2, 1, E}, {E, E, 1}}, {y.data(), {2, 1, E}, {E, E, 1}}, cache, 0, twice),
                       doctest::Contains("appears twice"), Error);
  CHECK(cache.length(id, 0) == 0);
  throws_unchanged(layer, cache, 1, id, "layer");
  const SequenceId dropped = cache.add_sequence();
  cache.drop(dropped);
  throws_unchanged(layer, cache, 0, dropped, "not in the cache");

  KvCacheConfig other = spec.cache(CacheType::fp32, 16);
  other.rope = {};
  KvCache unturned(other);
  throws_unchanged(layer, unturned, 0, unturned.add_sequence(), "rope");
  other = spec.cache(CacheType::fp32, 16);
  other.kv_heads = 1;
  KvCache one_head(other);
  throws_unchanged(layer, one_head, 0, one_head.add_sequence(), "kv_heads");

  Layer full = spec;
  full.config.attention.window = Window::full();
  throws_unchanged(full.make(), cache, 0, id, "causal");
  Layer shifted = spec;
  shifted.config.attention.positions.key_start = 5;
  throws_unchanged(shifted.make(), cache, 0, id, "positions");

  KvCache int8(spec.cache(CacheType::int8, 16));
  const SequenceId q = int8.add_sequence();
  x[E + 3] = std::numeric_limits<float>::quiet_NaN();
  throws_unchanged(layer, int8, 0, q, "NaN");
  CHECK(int8.length(q, 0) == 0);
}
