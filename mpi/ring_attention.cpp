// Ring attention on MPI: each step computes this rank's queries against the key-value block
// that arrived last while the next block travels (MPI_Isend / MPI_Irecv, two buffers), and
// merges each partial result into the output through its log-sum-exp.
#include "longattn/ring.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/attention_validation.hpp"
#include "engine/window_plan.hpp"
#include "longattn/error.hpp"
#include "mpi/ring_checks.hpp"
#include "mpi/ring_linear.hpp"

namespace longattn {

std::int64_t RingSlice::rows() const {
  std::int64_t total = 0;
  for (const auto& [start, length] : segments) total += length;
  return total;
}

RingSlice ring_slice(std::int64_t n, int rank, int ranks, RingBalance balance) {
  if (n < 0 || ranks < 1 || rank < 0 || rank >= ranks) {
    throw Error("ring_slice: expected n >= 0 and 0 <= rank < ranks, got n " + std::to_string(n) + ", rank " +
                std::to_string(rank) + " of " + std::to_string(ranks));
  }
  // Chunk c of `count` even chunks of n rows: [c·n / count, (c + 1)·n / count).
  auto chunk = [n](std::int64_t c, std::int64_t count) {
    const std::int64_t begin = c * n / count, end = (c + 1) * n / count;
    return std::array<std::int64_t, 2>{begin, end - begin};
  };
  RingSlice slice;
  if (balance == RingBalance::contiguous) {
    slice.segments.push_back(chunk(rank, ranks));
  } else {
    slice.segments.push_back(chunk(rank, 2 * ranks));
    slice.segments.push_back(chunk(2 * ranks - 1 - rank, 2 * ranks));
  }
  return slice;
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A rank's keys and values as they travel: [B, Hkv, rows, D] keys then [B, Hkv, rows, Dv]
// values, contiguous, in the element type of the inputs.
template <class T>
struct KeyValueBlock {
  std::vector<T> data;
  std::int64_t rows = 0;
};

template <class T>
void pack_block(const HeadsView<const T>& k, const HeadsView<const T>& v, KeyValueBlock<T>& block) {
  const std::int64_t B = k.shape[0], H = k.shape[1], n = k.shape[2], D = k.shape[3], Dv = v.shape[3];
  block.rows = n;
  T* to = block.data.data();
  for (const auto* view : {&k, &v}) {
    const std::int64_t width = view == &k ? D : Dv;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t j = 0; j < n; ++j)
          for (std::int64_t c = 0; c < width; ++c) {
            *to++ = view->data[b * view->strides[0] + h * view->strides[1] + j * view->strides[2] + c * view->strides[3]];
          }
  }
}

// Rows [first, first + count) of a block that holds `rows` rows: keys, then values.
template <class T>
std::array<HeadsView<const T>, 2> block_rows(const KeyValueBlock<T>& block, const engine::AttentionShape& s,
                                             std::int64_t rows, std::int64_t first, std::int64_t count) {
  const T* keys = block.data.data();
  const T* values = keys + s.batch * s.kv_heads * rows * s.d;
  return {HeadsView<const T>{keys + first * s.d, {s.batch, s.kv_heads, count, s.d},
                             {s.kv_heads * rows * s.d, rows * s.d, s.d, 1}},
          HeadsView<const T>{values + first * s.dv, {s.batch, s.kv_heads, count, s.dv},
                             {s.kv_heads * rows * s.dv, rows * s.dv, s.dv, 1}}};
}

// The output and log-sum-exp of this rank's rows, merged over the partial results.
class Merged {
 public:
  Merged(const HeadsView<float>& out, Normalizer normalizer, std::int64_t n)
      : out_(out), normalizer_(normalizer), n_(n),
        lse_(static_cast<std::size_t>(out.shape[0] * out.shape[1] * out.shape[2]), kNegInf) {
    for (std::int64_t b = 0; b < out.shape[0]; ++b)
      for (std::int64_t h = 0; h < out.shape[1]; ++h)
        for (std::int64_t i = 0; i < out.shape[2]; ++i)
          for (std::int64_t c = 0; c < out.shape[3]; ++c) at(b, h, i, c) = 0.0f;
  }

  // A partial result for rows [first, first + part rows) over `keys` keys: softmax merges by
  // lse, sigmoid adds, relu adds after undoing the division by the partial's own key count.
  void add(std::int64_t first, const std::vector<float>& part, const std::vector<float>& part_lse, std::int64_t keys) {
    const std::int64_t B = out_.shape[0], H = out_.shape[1], rows = static_cast<std::int64_t>(part_lse.size()) / (B * H);
    const std::int64_t Dv = out_.shape[3];
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t r = 0; r < rows; ++r) {
          const std::size_t row = static_cast<std::size_t>((b * H + h) * rows + r);
          float old_weight = 1.0f, new_weight = 1.0f;
          if (normalizer_ == Normalizer::relu) new_weight = float(keys) / float(n_);
          if (normalizer_ == Normalizer::softmax) {
            float& lse = lse_[static_cast<std::size_t>((b * H + h) * out_.shape[2] + first + r)];
            const float l = part_lse[row];
            if (l == kNegInf) continue;  // the partial saw no key
            const float merged = lse == kNegInf ? l : std::max(lse, l) + std::log1p(std::exp(-std::abs(lse - l)));
            old_weight = lse == kNegInf ? 0.0f : std::exp(lse - merged);
            new_weight = std::exp(l - merged);
            lse = std::isnan(l) ? l : merged;
          }
          for (std::int64_t c = 0; c < Dv; ++c) {
            float& o = at(b, h, first + r, c);
            o = o * old_weight + part[row * static_cast<std::size_t>(Dv) + c] * new_weight;
          }
        }
  }

  void write_lse(const TensorView<float, 3>& lse) const {
    if (lse.empty()) return;
    for (std::int64_t b = 0; b < out_.shape[0]; ++b)
      for (std::int64_t h = 0; h < out_.shape[1]; ++h)
        for (std::int64_t i = 0; i < out_.shape[2]; ++i) {
          lse.data[b * lse.strides[0] + h * lse.strides[1] + i * lse.strides[2]] =
              lse_[static_cast<std::size_t>((b * out_.shape[1] + h) * out_.shape[2] + i)];
        }
  }

 private:
  float& at(std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t c) {
    return out_.data[b * out_.strides[0] + h * out_.strides[1] + i * out_.strides[2] + c * out_.strides[3]];
  }

  HeadsView<float> out_;
  Normalizer normalizer_;
  std::int64_t n_;
  std::vector<float> lse_;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One attention call per (query segment, key segment) pair at their global positions, its
// result merged into the rank's output.
class PairAttention {
 public:
  PairAttention(const engine::AttentionShape& shape, const AttentionOptions& options, std::int64_t n,
                const HeadsView<float>& out, AttentionStats& stats)
      : s_(shape), options_(options), partial_(options), merged_(out, options.normalizer, n), stats_(stats),
        lengths_(static_cast<std::size_t>(shape.batch)) {
    if (options.normalizer == Normalizer::sigmoid && !options.sigmoid_bias) {  // the whole sequence's default
      partial_.sigmoid_bias = -std::log(static_cast<float>(std::max<std::int64_t>(1, n)));
    }
  }

  // Queries q (this rank's rows q_first ..., at global row q_start) against keys and values
  // at global row k_start.
  template <class T>
  void run(const HeadsView<const T>& q, std::int64_t q_first, std::int64_t q_start,
           const std::array<HeadsView<const T>, 2>& keys_values, std::int64_t k_start) {
    const std::int64_t q_rows = q.shape[2], k_rows = keys_values[0].shape[2];
    if (q_rows == 0 || k_rows == 0) return;
    const engine::WindowPlan window(q_rows, k_rows, options_.window, q_start - k_start);
    if (window.classify(0, q_rows, 0, k_rows) == engine::TileKind::skipped) return;  // no query sees a key
    partial_.positions = {q_start, k_start};
    if (!options_.key_lengths.empty()) {  // the global lengths, in the block's rows
      for (std::int64_t b = 0; b < s_.batch; ++b) {
        lengths_[b] = std::clamp<std::int64_t>(options_.key_lengths[b] - k_start, 0, k_rows);
      }
      partial_.key_lengths = lengths_;
    }
    // attention() writes every row of both (zeros and -inf where no key is seen).
    part_.resize(static_cast<std::size_t>(s_.batch * s_.q_heads * q_rows * s_.dv));
    part_lse_.resize(static_cast<std::size_t>(s_.batch * s_.q_heads * q_rows));
    const bool softmax = options_.normalizer == Normalizer::softmax;
    const AttentionStats one = attention(
        q, keys_values[0], keys_values[1], bhnd(part_.data(), s_.batch, s_.q_heads, q_rows, s_.dv), partial_,
        softmax ? bhn(part_lse_.data(), s_.batch, s_.q_heads, q_rows) : TensorView<float, 3>{});
    merged_.add(q_first, part_, part_lse_, k_rows);
    stats_.flops += one.flops;
    stats_.visible_pairs += one.visible_pairs;
    stats_.isa = one.isa;
    stats_.bf16_products = one.bf16_products;
  }

  void write_lse(const TensorView<float, 3>& lse) const { merged_.write_lse(lse); }

 private:
  const engine::AttentionShape& s_;
  const AttentionOptions& options_;
  AttentionOptions partial_;  // the options of each call: positions and lengths of its pair
  Merged merged_;
  AttentionStats& stats_;
  std::vector<std::int64_t> lengths_;
  std::vector<float> part_, part_lse_;
};

// Whether any query row of `queries` sees any key row of `keys` under the window.
bool sees(const RingSlice& queries, const RingSlice& keys, Window window) {
  for (const auto& [q_start, q_rows] : queries.segments)
    for (const auto& [k_start, k_rows] : keys.segments) {
      if (q_rows == 0 || k_rows == 0) continue;
      const engine::WindowPlan plan(q_rows, k_rows, window, q_start - k_start);
      if (plan.classify(0, q_rows, 0, k_rows) != engine::TileKind::skipped) return true;
    }
  return false;
}

// The blocks every rank's ring visits after its own: `left` steps passing blocks rightwards
// (rank r then holds those of r - 1, r - 2, ...), then `right` steps passing them leftwards
// (r + 1, r + 2, ...). Steps no rank needs are not taken, so a window talks to the ranks
// it reaches.
struct RingRoute {
  int left = 0, right = 0;
};

RingRoute plan_route(const mpi::RingLayout& layout, Window window) {
  const int P = layout.ranks;
  // needed[d]: some rank sees the keys of the rank d to its left (P - d to its right).
  std::vector<bool> needed(static_cast<std::size_t>(P), false);
  for (int r = 0; r < P; ++r)
    for (int d = 1; d < P; ++d) needed[d] = needed[d] || sees(layout.slices[r], layout.slices[(r - d + P) % P], window);
  // Distances up to `left` come from the left, the others from the right: the shortest split.
  RingRoute best{P - 1, 0};
  for (int left = 0; left < P - 1; ++left) {
    int farthest = P;  // the first distance past `left` that is needed
    for (int d = P - 1; d > left; --d) if (needed[d]) farthest = d;
    const RingRoute route{left, P - farthest};
    if (route.left + route.right < best.left + best.right) best = route;
  }
  return best;
}

// Visit 0 is the rank's own block; visits 1 ... left come from the left, the rest from the right.
struct Visit {
  int direction = 1;  // +1: blocks travel to rank + 1; -1: to rank - 1
  int distance = 0;   // how far the block's owner is
};

std::vector<Visit> visits_of(const RingRoute& route) {
  std::vector<Visit> visits{{1, 0}};
  for (int d = 1; d <= route.left; ++d) visits.push_back({1, d});
  for (int d = 1; d <= route.right; ++d) visits.push_back({-1, d});
  return visits;
}

template <class T>
RingStats run_ring(MPI_Comm comm, const RingSlice& slice, const HeadsView<const T>& q,
                   const HeadsView<const T>& k, const HeadsView<const T>& v, const HeadsView<float>& out,
                   const AttentionOptions& options, const TensorView<float, 3>& lse) {
  const auto start = std::chrono::steady_clock::now();
  const mpi::RingLayout layout = mpi::check_collectively(comm, slice, q, k, v, out, lse, options, sizeof(T));
  const engine::AttentionShape& s = layout.shape;  // this rank's: nq = nk = its rows
  RingStats ring;
  if (options.normalizer == Normalizer::linear) {
    ring.attention = mpi::linear_ring(comm, layout, slice, q, k, v, out, options);
    ring.seconds = seconds_since(start);
    return ring;
  }
  const int P = layout.ranks, rank = layout.rank;
  auto block_of = [&](std::int64_t rows) {
    return KeyValueBlock<T>{std::vector<T>(static_cast<std::size_t>(s.batch * s.kv_heads * rows * (s.d + s.dv)))};
  };
  // The rank's own block stays put (both directions start from it); two more take turns
  // between the block being computed and the one arriving.
  KeyValueBlock<T> own = block_of(s.nk), travelling[2] = {block_of(layout.most_rows), block_of(layout.most_rows)};
  pack_block(k, v, own);
  PairAttention pairs(s, options, layout.n, out, ring.attention);
  auto ring_rank = [P](int r) { return (r % P + P) % P; };  // ranks count round the ring
  auto owner = [&](const Visit& visit) { return ring_rank(rank - visit.direction * visit.distance); };
  auto block_bytes = [&](int of) {
    return static_cast<int>(s.batch * s.kv_heads * layout.slices[of].rows() * (s.d + s.dv) * sizeof(T));
  };
  const std::vector<Visit> visits = visits_of(plan_route(layout, options.window));
  for (std::size_t i = 0; i < visits.size(); ++i) {
    KeyValueBlock<T>& current = i == 0 ? own : travelling[i % 2];
    const int source = owner(visits[i]);
    current.rows = layout.slices[source].rows();
    MPI_Request requests[2];
    const bool passing = i + 1 < visits.size();
    if (passing) {  // the next visit's block arrives from one side while its predecessor leaves to the other
      const Visit next = visits[i + 1];
      const KeyValueBlock<T>& leaving = next.distance == 1 ? own : current;
      const int sent = next.distance == 1 ? rank : source, tag = static_cast<int>(i);
      MPI_Irecv(travelling[(i + 1) % 2].data.data(), block_bytes(owner(next)), MPI_BYTE,
                ring_rank(rank - next.direction), tag, comm, &requests[0]);
      MPI_Isend(leaving.data.data(), block_bytes(sent), MPI_BYTE, ring_rank(rank + next.direction), tag, comm,
                &requests[1]);
      ring.bytes_sent += block_bytes(sent);
      ++ring.blocks_sent;
    }
    const auto compute_start = std::chrono::steady_clock::now();
    std::int64_t q_first = 0;
    for (const auto& [q_start, q_rows] : slice.segments) {
      std::int64_t k_first = 0;
      for (const auto& [k_start, k_rows] : layout.slices[source].segments) {
        pairs.run(narrow(q, 2, q_first, q_rows), q_first, q_start, block_rows(current, s, current.rows, k_first, k_rows),
                  k_start);
        k_first += k_rows;
      }
      q_first += q_rows;
    }
    ring.compute_seconds += seconds_since(compute_start);
    const auto wait_start = std::chrono::steady_clock::now();
    if (passing) MPI_Waitall(2, requests, MPI_STATUSES_IGNORE);
    ring.wait_seconds += seconds_since(wait_start);
  }
  pairs.write_lse(lse);
  ring.seconds = seconds_since(start);
  return ring;
}

}  // namespace

RingStats ring_attention(MPI_Comm comm, const RingSlice& slice, HeadsView<const float> q,
                              HeadsView<const float> k, HeadsView<const float> v, HeadsView<float> out,
                              const AttentionOptions& options, TensorView<float, 3> lse) {
  return run_ring(comm, slice, q, k, v, out, options, lse);
}

RingStats ring_attention(MPI_Comm comm, const RingSlice& slice, HeadsView<const bf16> q,
                              HeadsView<const bf16> k, HeadsView<const bf16> v, HeadsView<float> out,
                              const AttentionOptions& options, TensorView<float, 3> lse) {
  return run_ring(comm, slice, q, k, v, out, options, lse);
}

}  // namespace longattn
