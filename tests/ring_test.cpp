// Ring attention on as many ranks as mpirun starts (CTest runs 1, 2, 3 and 4): every rank
// draws the same whole sequence, computes single-process attention on it, and checks its own
// rows of the ring's result against those rows.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "longattn/longattn.hpp"
#include "longattn/ring.hpp"
#include "check/attention_case.hpp"
#include "simd/kernel_table.hpp"

using namespace longattn;

namespace {

struct Sequence {
  std::int64_t B = 1, Hq = 2, Hkv = 2, n = 300, D = 32, Dv = 32;
};

std::vector<float> random_floats(std::int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<std::size_t>(count));
  for (float& e : x) e = normal(rng);
  return x;
}

// Rows of a [B, H, n, width] tensor that a slice names, in its order: [B, H, rows, width].
std::vector<float> slice_rows(const std::vector<float>& whole, std::int64_t B, std::int64_t H, std::int64_t n,
                              std::int64_t width, const RingSlice& slice) {
  std::vector<float> rows;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h)
      for (const auto& [start, length] : slice.segments) {
        const float* first = whole.data() + ((b * H + h) * n + start) * width;
        rows.insert(rows.end(), first, first + length * width);
      }
  return rows;
}

// The largest |a - b| over the largest |b| (at least 1).
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double error = 0, scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(b[i]) && a[i] == b[i]) continue;
    error = std::max(error, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return error / scale;
}

// Ring attention on this rank's rows against one process's attention on the whole sequence,
// within `tolerance` of the largest value.
RingStats check_ring(const Sequence& s, const AttentionOptions& options, RingBalance balance, unsigned seed = 1,
                     double tolerance = 1e-6) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const std::vector<float> q = random_floats(s.B * s.Hq * s.n * s.D, seed), k = random_floats(s.B * s.Hkv * s.n * s.D, seed + 1),
                           v = random_floats(s.B * s.Hkv * s.n * s.Dv, seed + 2);
  const bool softmax = options.normalizer == Normalizer::softmax;
  std::vector<float> expected(s.B * s.Hq * s.n * s.Dv), expected_lse(s.B * s.Hq * s.n);
  attention(bhnd(q.data(), s.B, s.Hq, s.n, s.D), bhnd(k.data(), s.B, s.Hkv, s.n, s.D),
            bhnd(v.data(), s.B, s.Hkv, s.n, s.Dv), bhnd(expected.data(), s.B, s.Hq, s.n, s.Dv), options,
            softmax ? bhn(expected_lse.data(), s.B, s.Hq, s.n) : TensorView<float, 3>{});

  const RingSlice slice = ring_slice(s.n, rank, ranks, balance);
  const std::int64_t rows = slice.rows();
  const std::vector<float> my_q = slice_rows(q, s.B, s.Hq, s.n, s.D, slice), my_k = slice_rows(k, s.B, s.Hkv, s.n, s.D, slice),
                           my_v = slice_rows(v, s.B, s.Hkv, s.n, s.Dv, slice);
  std::vector<float> out(s.B * s.Hq * rows * s.Dv, NAN), lse(s.B * s.Hq * rows, NAN);
  const RingStats stats = ring_attention(
      MPI_COMM_WORLD, slice, bhnd(my_q.data(), s.B, s.Hq, rows, s.D), bhnd(my_k.data(), s.B, s.Hkv, rows, s.D),
      bhnd(my_v.data(), s.B, s.Hkv, rows, s.Dv), bhnd(out.data(), s.B, s.Hq, rows, s.Dv), options,
      softmax ? bhn(lse.data(), s.B, s.Hq, rows) : TensorView<float, 3>{});
  CAPTURE(rank);
  CAPTURE(ranks);
  CHECK(relative_error(out, slice_rows(expected, s.B, s.Hq, s.n, s.Dv, slice)) <= tolerance);
  if (softmax) CHECK(relative_error(lse, slice_rows(expected_lse, s.B, s.Hq, s.n, 1, slice)) <= tolerance);
  // The visible pairs of all ranks together are the whole sequence's.
  std::int64_t pairs = stats.attention.visible_pairs, total = 0;
  MPI_Allreduce(&pairs, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  AttentionStats whole = attention(bhnd(q.data(), s.B, s.Hq, s.n, s.D), bhnd(k.data(), s.B, s.Hkv, s.n, s.D),
                                   bhnd(v.data(), s.B, s.Hkv, s.n, s.Dv), bhnd(expected.data(), s.B, s.Hq, s.n, s.Dv),
                                   options);
  CHECK(total == whole.visible_pairs);
  return stats;
}

}  // namespace

TEST_CASE("ring attention equals one process: full, causal, windows, both balances") {
  for (RingBalance balance : {RingBalance::contiguous, RingBalance::zigzag}) {
    CAPTURE(static_cast<int>(balance));
    AttentionOptions full, causal, window;
    causal.window = Window::causal();
    window.window = {40, 5};
    check_ring({}, full, balance);
    check_ring({}, causal, balance);
    check_ring({}, window, balance);
    check_ring({.n = 7}, causal, balance);  // fewer rows than 2P chunks: some ranks hold none
  }
}

TEST_CASE("ring attention: grouped heads, key padding, positions in the kernel, normalizers, bf16") {
  AttentionOptions causal;
  causal.window = Window::causal();
  check_ring({.B = 2, .Hq = 4, .Hkv = 1, .n = 257, .D = 64, .Dv = 48}, causal, RingBalance::zigzag);
  const std::vector<std::int64_t> lengths{200, 97};
  AttentionOptions padded;
  padded.key_lengths = lengths;
  check_ring({.B = 2}, padded, RingBalance::contiguous);
  AttentionOptions rope = causal;
  rope.rope.pairing = RopePairing::half;
  check_ring({.D = 64}, rope, RingBalance::zigzag);
  AttentionOptions alibi = causal;
  alibi.alibi = true;
  check_ring({}, alibi, RingBalance::contiguous);
  for (Normalizer normalizer : {Normalizer::sigmoid, Normalizer::relu}) {
    AttentionOptions other = causal;
    other.normalizer = normalizer;
    check_ring({}, other, RingBalance::zigzag);
  }
}

// Each rank's blocks are smoothed by their own mean key: their lse must carry each block's
// offset back for the merge to hold.
TEST_CASE("ring attention with int8 scores: blocks smoothed apart, merged through their lse") {
  if (!check::int8_scores_available(Isa::avx512)) return;
  AttentionOptions causal;
  causal.window = Window::causal();
  causal.qk_precision = QkPrecision::int8;
  causal.isa = Isa::avx512;  // the int8 path, whatever LONGATTN_ISA says
  check_ring({.Hq = 4, .Hkv = 2, .n = 1000, .D = 64, .Dv = 64}, causal, RingBalance::zigzag, 3, 2e-2);
  AttentionOptions full;
  full.qk_precision = QkPrecision::int8;
  full.isa = Isa::avx512;
  check_ring({.n = 900, .D = 48, .Dv = 40}, full, RingBalance::contiguous, 4, 2e-2);
}

TEST_CASE("ring attention: linear attention from the states of the segments each rank sees") {
  for (RingBalance balance : {RingBalance::contiguous, RingBalance::zigzag}) {
    CAPTURE(static_cast<int>(balance));
    AttentionOptions full, causal;
    full.normalizer = causal.normalizer = Normalizer::linear;
    causal.window = Window::causal();
    check_ring({}, full, balance);
    check_ring({}, causal, balance);
    check_ring({.B = 2, .Hq = 4, .Hkv = 2, .n = 7, .D = 16, .Dv = 8}, causal, balance);  // ranks without rows
    const std::vector<std::int64_t> lengths{200, 97};
    AttentionOptions padded = causal;
    padded.key_lengths = lengths;
    check_ring({.B = 2}, padded, balance);
  }
}

TEST_CASE("ring attention: a window passes blocks only to the ranks it reaches") {
  int ranks = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  // 400 rows: every rank holds at least 100, more than the windows reach.
  for (auto [window, left, right] : {std::tuple{Window{40, 5}, 1, 1}, std::tuple{Window{40, 0}, 1, 0},
                                     std::tuple{Window{-1, 0}, ranks - 1, 0}}) {
    CAPTURE(window.left);
    CAPTURE(window.right);
    AttentionOptions options;
    options.window = window;
    const RingStats stats = check_ring({.n = 400}, options, RingBalance::contiguous);
    CHECK(stats.blocks_sent == (left + right >= ranks - 1 ? ranks - 1 : left + right));
  }
}

TEST_CASE("ring attention: a bad argument on one rank is an Error on every rank, nothing written") {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const RingSlice slice = ring_slice(64, rank, ranks, RingBalance::contiguous);
  const std::int64_t rows = slice.rows();
  // Rank 0 holds D = 16, the others D = 8 (or, on one rank, a mask it cannot split).
  const std::int64_t D = rank == 0 ? 16 : 8;
  const std::vector<float> q(rows * D, 1.0f);
  std::vector<float> out(rows * D, 7.0f);
  std::vector<std::uint8_t> mask(64 * 64, 1);
  AttentionOptions options;
  if (ranks == 1) options.mask = {mask.data(), {rows, rows}, {rows, 1}};
  try {
    ring_attention(MPI_COMM_WORLD, slice, bhnd(q.data(), 1, 1, rows, D), bhnd(q.data(), 1, 1, rows, D),
                   bhnd(q.data(), 1, 1, rows, D), bhnd(out.data(), 1, 1, rows, D), options);
    FAIL("no error thrown");
  } catch (const Error& e) {
    const std::string message = e.what();
    CAPTURE(message);
    CHECK(message.find(ranks == 1 ? "mask" : "the ranks disagree on D") != std::string::npos);
  }
  CHECK(std::all_of(out.begin(), out.end(), [](float x) { return x == 7.0f; }));
}

// A layer of E = 48, 4 query heads over 2 kv heads, causal with RoPE and sinusoidal positions,
// on the same random weights on every rank.
MultiHeadSelfAttention ring_layer_under_test(std::int64_t E) {
  const std::int64_t Hq = 4, Hkv = 2, D = 12;
  static const std::vector<float> wq = random_floats(Hq * D * 48, 11), wk = random_floats(Hkv * D * 48, 12),
                                  wv = random_floats(Hkv * D * 48, 13), wo = random_floats(48 * Hq * D, 14),
                                  bias = random_floats(48, 15);
  MultiHeadConfig config{.embed_dim = E, .heads = Hq, .kv_heads = Hkv, .head_dim = D,
                         .positions = AbsolutePositions::sinusoidal, .attention = {}};
  config.attention.window = Window::causal();
  config.attention.rope.pairing = RopePairing::interleaved;
  config.attention.scale = 0.1f;  // random weights make large scores
  MultiHeadWeights weights;
  weights.wq = {wq.data(), {Hq * D, E}, {E, 1}};
  weights.wk = {wk.data(), {Hkv * D, E}, {E, 1}};
  weights.wv = {wv.data(), {Hkv * D, E}, {E, 1}};
  weights.wo = {wo.data(), {E, Hq * D}, {Hq * D, 1}};
  weights.bo = std::span(bias.data(), static_cast<std::size_t>(E));
  return MultiHeadSelfAttention(config, weights);
}

TEST_CASE("the multi-head layer across ranks equals the layer on the whole sequence") {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const std::int64_t B = 2, n = 203, E = 48;
  const MultiHeadSelfAttention layer = ring_layer_under_test(E);
  const std::vector<float> x = random_floats(B * n * E, 21);
  std::vector<float> expected(x.size());
  layer.forward({x.data(), {B, n, E}, {n * E, E, 1}}, {expected.data(), {B, n, E}, {n * E, E, 1}});
  for (RingBalance balance : {RingBalance::contiguous, RingBalance::zigzag}) {
    CAPTURE(static_cast<int>(balance));
    const RingSlice slice = ring_slice(n, rank, ranks, balance);
    const std::int64_t rows = slice.rows();
    const std::vector<float> my_x = slice_rows(x, B, 1, n, E, slice);
    std::vector<float> y(my_x.size(), NAN);
    const RingLayerStats stats =
        ring_forward(MPI_COMM_WORLD, slice, layer, {my_x.data(), {B, rows, E}, {rows * E, E, 1}},
                     {y.data(), {B, rows, E}, {rows * E, E, 1}});
    CHECK(relative_error(y, slice_rows(expected, B, 1, n, E, slice)) <= 1e-5);
    CHECK(stats.ring.attention.visible_pairs == stats.layer.attention.visible_pairs);
  }
  // One rank's x of the wrong width: an Error on every rank, y untouched.
  const RingSlice slice = ring_slice(n, rank, ranks, RingBalance::contiguous);
  const std::int64_t rows = slice.rows(), width = rank == ranks - 1 ? E + 1 : E;
  const std::vector<float> bad_x(static_cast<std::size_t>(B * rows * width), 1.0f);
  std::vector<float> y(static_cast<std::size_t>(B * rows * width), 7.0f);
  CHECK_THROWS_WITH_AS(ring_forward(MPI_COMM_WORLD, slice, layer, {bad_x.data(), {B, rows, width}, {rows * width, width, 1}},
                                    {y.data(), {B, rows, width}, {rows * width, width, 1}}),
                       doctest::Contains("x.shape"), Error);
  CHECK(std::all_of(y.begin(), y.end(), [](float e) { return e == 7.0f; }));
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  doctest::Context context(argc, argv);
  const int failed = context.run();
  int any = failed != 0, all = 0;
  MPI_Allreduce(&any, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return all;
}
