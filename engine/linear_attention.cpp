#include "engine/linear_attention.hpp"

#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "engine/aligned_buffer.hpp"
#include "engine/input_elements.hpp"
#include "engine/thread_arena.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::engine {
namespace {

// Full window: chunks of keys summed apart and chunks of queries answered apart, per kv head.
// Enough to keep every thread busy, few enough that their D × Dv partial states stay small
// (64 × 16 KiB at D = Dv = 64). Fixed by the shape alone, so results are too.
constexpr std::int64_t kMaxChunks = 64;

// Causal: each chunk after the first starts from the keys of those before it, summed in a
// pass of their own, which costs as much again as the chunk's own pass over its keys. Heads
// alone give enough tasks when there are this many; fewer heads split the sequence until
// there are (bench/TUNING.md "Linear attention").
constexpr std::int64_t kCausalTasks = 8;

// Keys a state update takes in one pass, query rows a full window answers in one pass, and
// query rows a causal block answers together: the block's C × C products among its own keys
// cost 2·C·(D + Dv) FLOPs per row beside the 4·D·Dv counted (bench/TUNING.md). A multiple of
// every target's lanes, so that each block's keys start on a vector of a loaded key panel.
constexpr std::int64_t kKeyBlock = 256;
constexpr std::int64_t kQueryBlock = 256;
constexpr std::int64_t kCausalRows = 16;

// Lines of the next block's rows fetched after each register block of the products: a key
// block's state update runs ~44 blocks of 6 × 4 while the next block's k and v rows are ~2000
// lines, which the elu of its features otherwise waits for; a causal block of 16 rows runs
// ~20 blocks for ~200 lines (bench/TUNING.md).
constexpr int kPrefetchLinesPerBlock = 48;
constexpr int kCausalPrefetchLinesPerBlock = 16;

// φ(x) = elu(x) + 1: x + 1 above zero, e^x below. Always positive.
template <class T>
void feature_map(const simd::KernelTable& kernels, const T* x, std::int64_t stride, std::int64_t d, float* phi) {
  if constexpr (std::is_same_v<T, float>) {
    if (stride == 1) return kernels.elementwise.elu_plus_one(x, phi, d);
  }
  for (std::int64_t i = 0; i < d; ++i) phi[i] = to_float(x[i * stride]);
  kernels.elementwise.elu_plus_one(phi, phi, d);
}

// Row j of head (b, h) of a view, where it lies.
template <class T>
T* row_of(const HeadsView<T>& x, std::int64_t b, std::int64_t h, std::int64_t j) {
  return x.data + b * x.strides[0] + h * x.strides[1] + j * x.strides[2];
}

// Value rows as the products read them: W floats of each row (Dv, then zeros), ld apart.
struct ValueRows {
  const float* rows = nullptr;
  std::int64_t ld = 0;
};

// A block of at most kKeyBlock loaded keys, from key `from` on: Φ(K) rows (D floats apart),
// Φ(K)ᵀ in key panels ([D][panel_width] each), and their value rows.
struct KeyBlock {
  std::int64_t from = 0, n = 0;
  const float* phi = nullptr;
  const float* panels = nullptr;
  ValueRows values;
};

// The buffers of one task, allocated once: keys, and the query rows it answers together.
struct Scratch {
  std::vector<float> phi_k, panels, values, phi_q, out, denominators, inverse, scores, row_max, ones;
  simd::PrefetchQueue prefetch;
};

template <class Q, class KV>
class LinearRunner {
 public:
  LinearRunner(const AttentionShape& s, const AttentionOptions& options, const HeadsView<const Q>& q,
               const HeadsView<const KV>& k, const HeadsView<const KV>& v, const HeadsView<float>& out,
               std::span<const float> prior)
      : s_(s), options_(options), q_(q), k_(k), v_(v), out_(out), prior_(prior), kern_(simd::kernels_for(options.isa)),
        causal_(options.window == Window::causal()), P_(kern_.panel_width), W_(padded(s.dv)),
        chunks_(chunk_count(s, causal_)), chunk_rows_((s.nq + chunks_ - 1) / chunks_),
        state_floats_(s.d * W_ + s.d) {}

  // Keys [0, key_length) of head (b, g) as S [D, Dv] then z [D], unpadded.
  void key_state(std::int64_t b, std::int64_t g, float* state) const {
    std::vector<float> sums(state_floats_, 0.0f);
    Scratch& m = local_scratch();
    add_keys(b, g, 0, key_length(b), sums.data(), m);
    for (std::int64_t i = 0; i < s_.d; ++i) std::copy_n(&sums[i * W_], s_.dv, state + i * s_.dv);
    std::copy_n(&sums[s_.d * W_], s_.d, state + s_.d * s_.dv);
  }

  AttentionStats run() {
    // Per (batch, kv head): the state sums of each chunk's keys, then an exclusive prefix over
    // them, then each chunk of rows of every query head of its group.
    const std::int64_t kv_heads = s_.batch * s_.kv_heads, per_head = (chunks_ + 1) * state_floats_;
    AlignedBuffer states(kv_heads * per_head);
    tbb::parallel_for(std::int64_t{0}, kv_heads * chunks_, [&](std::int64_t task) {
      sum_keys(task / chunks_, task % chunks_, states.data() + task / chunks_ * per_head);
    });
    tbb::parallel_for(std::int64_t{0}, kv_heads, [&](std::int64_t kv_head) {
      prefix_over_chunks(states.data() + kv_head * per_head, kv_head);
    });
    tbb::parallel_for(std::int64_t{0}, kv_heads * chunks_, [&](std::int64_t task) {
      const std::int64_t kv_head = task / chunks_, t = task % chunks_;
      const float* base = states.data() + kv_head * per_head;
      if (causal_) {
        answer_causal(kv_head, t, base + t * state_floats_);
      } else {
        answer_full(kv_head, t, base + chunks_ * state_floats_);  // the total, after the last prefix
      }
    });
    return counted_stats(states.bytes());
  }

 private:
  // Chunks per kv head: of keys and queries for the full window; for causal, only as many as
  // the heads leave threads without work (kCausalTasks), as each costs a pass over its keys.
  static std::int64_t chunk_count(const AttentionShape& s, bool causal) {
    if (!causal) return std::clamp<std::int64_t>((s.nq + kQueryBlock - 1) / kQueryBlock, 1, kMaxChunks);
    const std::int64_t heads = std::max<std::int64_t>(1, s.batch * s.kv_heads);
    return std::clamp<std::int64_t>((kCausalTasks + heads - 1) / heads, 1, std::max<std::int64_t>(1, s.nq / kQueryBlock));
  }

  std::int64_t padded(std::int64_t n) const { return (n + kern_.lanes - 1) / kern_.lanes * kern_.lanes; }
  std::int64_t key_length(std::int64_t b) const {
    return options_.key_lengths.empty() ? s_.nk : options_.key_lengths[b];
  }
  // Keys query row i may see: j < visible_keys(b, i).
  std::int64_t visible_keys(std::int64_t b, std::int64_t i) const {
    const std::int64_t length = key_length(b);
    return causal_ ? std::clamp<std::int64_t>(i + options_.positions.query_offset(s_.nq, s_.nk) + 1, 0, length) : length;
  }
  // Keys that belong to chunk t's sum: those the previous chunk's last query sees (causal), or
  // an equal share of all keys (full window).
  std::int64_t key_boundary(std::int64_t b, std::int64_t t) const {
    if (!causal_) return std::min(key_length(b), t * ((key_length(b) + chunks_ - 1) / chunks_));
    const std::int64_t first_row = std::min(s_.nq, t * chunk_rows_);
    return first_row == 0 ? 0 : visible_keys(b, first_row - 1);
  }

  // The calling thread's scratch, made at its first task and kept while the runner lives:
  // later tasks allocate and fault in nothing. A task never shares its thread with another.
  Scratch& local_scratch(int prefetch_lines_per_block = kPrefetchLinesPerBlock) const {
    const auto slot = static_cast<std::size_t>(tbb::this_task_arena::current_thread_index());
    Scratch* m = nullptr;
    {
      const std::lock_guard lock(mutex_);  // once per task
      if (slot >= slots_.size()) slots_.resize(slot + 1);
      if (!slots_[slot]) slots_[slot] = std::make_unique<Scratch>(new_scratch());
      m = slots_[slot].get();
    }
    m->prefetch = simd::PrefetchQueue(prefetch_lines_per_block);
    return *m;
  }

  Scratch new_scratch() const {
    const std::int64_t block_panels = (kKeyBlock + P_ - 1) / P_;
    const std::int64_t query_rows = std::max(kQueryBlock, s_.group() * kCausalRows);
    Scratch m;
    m.phi_k.resize(static_cast<std::size_t>(kKeyBlock * s_.d));
    m.panels.resize(static_cast<std::size_t>(block_panels * s_.d * P_));
    m.values.assign(static_cast<std::size_t>(kKeyBlock * W_), 0.0f);  // padding columns stay zero
    m.phi_q.resize(static_cast<std::size_t>(query_rows * s_.d));
    m.out.resize(static_cast<std::size_t>(query_rows * W_));
    m.denominators.resize(static_cast<std::size_t>(query_rows));
    m.inverse.resize(static_cast<std::size_t>(query_rows));
    m.scores.resize(static_cast<std::size_t>(kCausalRows * kKeyBlock));
    m.row_max.assign(static_cast<std::size_t>(kCausalRows), 0.0f);
    m.ones.assign(static_cast<std::size_t>(kKeyBlock), 1.0f);
    return m;
  }

  // φ of rows [from, from + n) of head (b, h) of x into phi, D floats apart.
  template <class T>
  void features(const HeadsView<const T>& x, std::int64_t b, std::int64_t h, std::int64_t from, std::int64_t n,
                float* phi) const {
    const T* first = row_of(x, b, h, from);
    if constexpr (std::is_same_v<T, float>) {
      if (x.strides[3] == 1 && x.strides[2] == s_.d) return kern_.elementwise.elu_plus_one(first, phi, n * s_.d);
    }
    for (std::int64_t j = 0; j < n; ++j) feature_map(kern_, first + j * x.strides[2], x.strides[3], s_.d, phi + j * s_.d);
  }

  // Queues rows [from, from + n) of head (b, h) of x (those that exist), to be fetched while
  // the products before them run.
  template <class T>
  static void queue_rows(simd::PrefetchQueue& queue, const HeadsView<T>& x, std::int64_t b, std::int64_t h,
                         std::int64_t from, std::int64_t n) {
    n = std::min(n, x.shape[2] - from);
    if (n <= 0 || x.strides[3] != 1) return;
    const T* first = row_of(x, b, h, from);
    queue.add_rows(first, n, x.shape[3] * std::int64_t{sizeof(T)}, x.strides[2] * std::int64_t{sizeof(T)});
  }

  // Value rows [from, from + n) of head (b, g): the caller's own where they hold W_ contiguous
  // floats, widened and padded into the scratch otherwise.
  ValueRows value_rows(std::int64_t b, std::int64_t g, std::int64_t from, std::int64_t n, Scratch& m) const {
    const KV* first = row_of(v_, b, g, from);
    if constexpr (std::is_same_v<KV, float>) {
      if (v_.strides[3] == 1 && W_ == s_.dv) return {first, v_.strides[2]};
    }
    for (std::int64_t j = 0; j < n; ++j) {
      widen_row(kern_, first + j * v_.strides[2], v_.strides[3], s_.dv, m.values.data() + j * W_);
    }
    return {m.values.data(), W_};
  }

  // Keys [from, from + n) of head (b, g), n <= kKeyBlock, loaded into the scratch.
  KeyBlock load_keys(std::int64_t b, std::int64_t g, std::int64_t from, std::int64_t n, Scratch& m) const {
    features(k_, b, g, from, n, m.phi_k.data());
    for (std::int64_t j0 = 0; j0 < n; j0 += P_) {
      kern_.packing.pack_key_panel(m.phi_k.data() + j0 * s_.d, s_.d, std::min(P_, n - j0), s_.d, 1.0f,
                                   m.panels.data() + j0 * s_.d, false);
    }
    return {from, n, m.phi_k.data(), m.panels.data(), value_rows(b, g, from, n, m)};
  }

  // state (S [D][W_], then z) += Φ(K)ᵀ V and Σ φ(k) over the block's keys [first, first + n)
  // (counted from its own first), a panel at a time.
  void add_to_state(const KeyBlock& keys, std::int64_t first, std::int64_t n, float* state,
                    simd::PrefetchQueue& prefetch) const {
    for (std::int64_t j = first; j < first + n;) {
      const std::int64_t count = std::min(first + n, (j / P_ + 1) * P_) - j;  // to the panel's end
      kern_.tile.pv_tile(keys.panels + j / P_ * s_.d * P_ + j % P_, s_.d, P_, count,
                         keys.values.rows + j * keys.values.ld, keys.values.ld, W_, state, nullptr, prefetch);
      j += count;
    }
    kern_.elementwise.add_columns(keys.phi + first * s_.d, n, s_.d, s_.d, state + s_.d * W_);
  }

  // Adds keys [from, to) of head (b, g) into state, a block of keys at a time, the next
  // block's rows fetched meanwhile.
  void add_keys(std::int64_t b, std::int64_t g, std::int64_t from, std::int64_t to, float* state, Scratch& m) const {
    for (std::int64_t j0 = from; j0 < to; j0 += kKeyBlock) {
      const KeyBlock keys = load_keys(b, g, j0, std::min(kKeyBlock, to - j0), m);
      queue_key_rows(m.prefetch, b, g, j0 + kKeyBlock, std::min(kKeyBlock, to - j0 - kKeyBlock));
      add_to_state(keys, 0, keys.n, state, m.prefetch);
    }
  }

  void queue_key_rows(simd::PrefetchQueue& queue, std::int64_t b, std::int64_t g, std::int64_t from,
                      std::int64_t n) const {
    queue.clear();
    queue_rows(queue, k_, b, g, from, n);
    queue_rows(queue, v_, b, g, from, n);
  }

  // Chunk t's keys summed into its slot; a causal sequence's last chunk has no chunk after it.
  void sum_keys(std::int64_t kv_head, std::int64_t t, float* states) const {
    float* slot = states + t * state_floats_;
    std::fill(slot, slot + state_floats_, 0.0f);
    if (causal_ && t == chunks_ - 1) return;
    const std::int64_t b = kv_head / s_.kv_heads, g = kv_head % s_.kv_heads;
    Scratch& m = local_scratch();
    add_keys(b, g, key_boundary(b, t), key_boundary(b, t + 1), slot, m);
  }

  // Each chunk's slot becomes the state of the keys before it (the prior's included); the slot
  // after the last, the total. Summed in a fixed order.
  void prefix_over_chunks(float* base, std::int64_t kv_head) const {
    std::vector<float> running = prior_state(kv_head), chunk(state_floats_);
    for (std::int64_t t = 0; t <= chunks_; ++t) {
      float* slot = base + t * state_floats_;
      std::copy(slot, slot + state_floats_, chunk.begin());
      std::copy(running.begin(), running.end(), slot);
      if (t < chunks_) for (std::int64_t i = 0; i < state_floats_; ++i) running[i] += chunk[i];
    }
  }

  // Query rows [i0, i0 + rows) of head (b, h): their features, out = Φ(Q) S and the
  // denominators Φ(Q) z.
  void start_rows(std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows, const float* state, float* phi_q,
                  float* out, float* denominators, simd::PrefetchQueue& prefetch) const {
    features(q_, b, h, i0, rows, phi_q);
    std::fill_n(out, rows * W_, 0.0f);
    std::fill_n(denominators, rows, 0.0f);
    kern_.tile.pv_tile(phi_q, rows, s_.d, s_.d, state, W_, W_, out, nullptr, prefetch);
    kern_.elementwise.add_row_dots(phi_q, rows, s_.d, s_.d, state + s_.d * W_, denominators);
  }

  // Rows [i0, i0 + rows) (rows <= kCausalRows) gain their products with the block's keys
  // [first, first + n) (first a multiple of lanes) that they see: Φ(Q) Φ(K)ᵀ masked, times V,
  // and its row sums into the denominators. Unless the values are all finite, each row's
  // product stops at its last key: a masked zero times a NaN or inf value would be NaN.
  void add_block_keys(std::int64_t b, std::int64_t i0, std::int64_t rows, const KeyBlock& keys, std::int64_t first,
                      std::int64_t n, bool values_finite, const float* phi_q, float* out, float* denominators,
                      Scratch& m) const {
    const std::int64_t ld = padded(n);
    simd::PrefetchQueue none;
    kern_.tile.qk_scores(phi_q, rows, s_.d, keys.panels, first, ld, m.scores.data(), ld, {}, m.row_max.data(), none);
    auto seen = [&](std::int64_t r) { return std::clamp<std::int64_t>(visible_keys(b, i0 + r) - keys.from - first, 0, n); };
    for (std::int64_t r = 0; r < rows; ++r) {  // keys past the row's last, or past the n
      std::fill(m.scores.data() + r * ld + seen(r), m.scores.data() + (r + 1) * ld, 0.0f);
    }
    kern_.elementwise.add_row_dots(m.scores.data(), rows, ld, n, m.ones.data(), denominators);
    const float* values = keys.values.rows + first * keys.values.ld;
    if (values_finite) {
      kern_.tile.pv_tile(m.scores.data(), rows, ld, n, values, keys.values.ld, W_, out, nullptr, none);
      return;
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      kern_.tile.pv_tile(m.scores.data() + r * ld, 1, ld, seen(r), values, keys.values.ld, W_, out + r * W_, nullptr, none);
    }
  }

  // out rows [i0, i0 + rows) of head (b, h) = the products over their denominators.
  void write_rows(std::int64_t b, std::int64_t h, std::int64_t i0, std::int64_t rows, const float* products,
                  const float* denominators, Scratch& m) const {
    for (std::int64_t r = 0; r < rows; ++r) {  // no key: zeros; a NaN denominator: NaN
      const float d = denominators[r];
      m.inverse[r] = d > 0 || std::isnan(d) ? 1.0f / d : 0.0f;
    }
    float* first = row_of(out_, b, h, i0);
    if (out_.strides[3] == 1) {
      kern_.elementwise.scale_rows(products, rows, W_, m.inverse.data(), first, out_.strides[2], s_.dv, true);
      return;
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t c = 0; c < s_.dv; ++c) first[r * out_.strides[2] + c * out_.strides[3]] = products[r * W_ + c] * m.inverse[r];
    }
  }

  // Full window: chunk t's rows of every query head of the group, from the total state.
  void answer_full(std::int64_t kv_head, std::int64_t t, const float* state) const {
    const std::int64_t b = kv_head / s_.kv_heads, row0 = t * chunk_rows_, row1 = std::min(s_.nq, row0 + chunk_rows_);
    Scratch& m = local_scratch();
    for (std::int64_t h = kv_head % s_.kv_heads * s_.group(); h < (kv_head % s_.kv_heads + 1) * s_.group(); ++h) {
      for (std::int64_t i0 = row0; i0 < row1; i0 += kQueryBlock) {
        const std::int64_t rows = std::min(kQueryBlock, row1 - i0);
        m.prefetch.clear();
        queue_rows(m.prefetch, q_, b, h, i0 + rows, std::min(kQueryBlock, row1 - i0 - rows));
        queue_rows(m.prefetch, out_, b, h, i0, rows);
        start_rows(b, h, i0, rows, state, m.phi_q.data(), m.out.data(), m.denominators.data(), m.prefetch);
        write_rows(b, h, i0, rows, m.out.data(), m.denominators.data(), m);
      }
    }
  }

  // Causal: chunk t's rows a block at a time, every query head of the group from the state of
  // the keys before the block; then the block's own new keys, masked, and into the state.
  // Keys are loaded kKeyBlock at a time, their rows fetched while the block before runs.
  void answer_causal(std::int64_t kv_head, std::int64_t t, const float* prefix) const {
    const std::int64_t b = kv_head / s_.kv_heads, g = kv_head % s_.kv_heads, group = s_.group();
    const std::int64_t row0 = t * chunk_rows_, row1 = std::min(s_.nq, row0 + chunk_rows_);
    if (row0 >= row1) return;
    const std::int64_t last_key = visible_keys(b, row1 - 1);  // the chunk's last row sees keys before it
    std::vector<float> state(prefix, prefix + state_floats_);
    Scratch& m = local_scratch(kCausalPrefetchLinesPerBlock);
    auto phi_q = [&](std::int64_t e) { return m.phi_q.data() + e * kCausalRows * s_.d; };
    auto out = [&](std::int64_t e) { return m.out.data() + e * kCausalRows * W_; };
    auto denominators = [&](std::int64_t e) { return m.denominators.data() + e * kCausalRows; };
    KeyBlock keys;
    std::int64_t seen = key_boundary(b, t);
    for (std::int64_t i0 = row0; i0 < row1; i0 += kCausalRows) {
      const std::int64_t rows = std::min(kCausalRows, row1 - i0);
      const std::int64_t until = std::max(seen, visible_keys(b, i0 + rows - 1));
      queue_next_block(m.prefetch, b, g, i0 + rows, std::min(kCausalRows, row1 - i0 - rows), seen, until);
      for (std::int64_t e = 0; e < group; ++e) {
        start_rows(b, g * group + e, i0, rows, state.data(), phi_q(e), out(e), denominators(e), m.prefetch);
      }
      for (std::int64_t j0 = seen; j0 < until;) {
        const std::int64_t first = j0 - keys.from;
        if (first < 0 || first >= keys.n || first % kern_.lanes != 0) {
          keys = load_keys(b, g, j0, std::min(kKeyBlock, last_key - j0), m);
          continue;
        }
        const std::int64_t n = std::min(until, keys.from + keys.n) - j0;
        const bool finite = kern_.elementwise.all_finite(keys.values.rows + first * keys.values.ld, n, keys.values.ld, W_);
        for (std::int64_t e = 0; e < group; ++e) {
          add_block_keys(b, i0, rows, keys, first, n, finite, phi_q(e), out(e), denominators(e), m);
        }
        add_to_state(keys, first, n, state.data(), m.prefetch);
        j0 += n;
      }
      seen = until;
      for (std::int64_t e = 0; e < group; ++e) write_rows(b, g * group + e, i0, rows, out(e), denominators(e), m);
    }
  }

  // Queues the rows of the causal block after this one (its queries in every head of the
  // group), and the rows of the keys a block later than this one's [seen, until).
  void queue_next_block(simd::PrefetchQueue& queue, std::int64_t b, std::int64_t g, std::int64_t i0, std::int64_t rows,
                        std::int64_t seen, std::int64_t until) const {
    queue.clear();
    for (std::int64_t e = 0; e < s_.group(); ++e) {  // this block's, written at its end
      queue_rows(queue, out_, b, g * s_.group() + e, i0 - kCausalRows, kCausalRows);
    }
    for (std::int64_t e = 0; e < s_.group() && rows > 0; ++e) queue_rows(queue, q_, b, g * s_.group() + e, i0, rows);
    queue_rows(queue, k_, b, g, seen + kKeyBlock, until - seen);
    queue_rows(queue, v_, b, g, seen + kKeyBlock, until - seen);
  }

  // The prior state of a (batch, kv head) laid out as the runner keeps it; zeros without one.
  std::vector<float> prior_state(std::int64_t kv_head) const {
    std::vector<float> state(state_floats_, 0.0f);
    if (prior_.empty()) return state;
    const float* from = prior_.data() + kv_head * (s_.d * s_.dv + s_.d);
    for (std::int64_t i = 0; i < s_.d; ++i) std::copy_n(from + i * s_.dv, s_.dv, &state[i * W_]);
    std::copy_n(from + s_.d * s_.dv, s_.d, &state[s_.d * W_]);
    return state;
  }

  AttentionStats counted_stats(std::int64_t scratch_bytes) const {
    AttentionStats stats;
    std::int64_t keys = 0;
    for (std::int64_t b = 0; b < s_.batch; ++b) {
      keys += key_length(b);
      for (std::int64_t i = 0; i < s_.nq; ++i) stats.visible_pairs += visible_keys(b, i);
    }
    stats.visible_pairs *= s_.q_heads;
    // The work of the recurrence, not of pairs (DESIGN.md §4): per key and head its share
    // φ(k) vᵀ of the D × Dv state, per query its product φ(q)ᵀ S, 2·D·Dv FLOPs each.
    stats.flops = 2.0 * double(s_.d) * double(s_.dv) * double(s_.q_heads) * double(keys + s_.batch * s_.nq);
    stats.scratch_bytes = scratch_bytes;
    stats.isa = kern_.isa;
    return stats;
  }

  const AttentionShape& s_;
  const AttentionOptions& options_;
  const HeadsView<const Q>& q_;
  const HeadsView<const KV>& k_;
  const HeadsView<const KV>& v_;
  const HeadsView<float>& out_;
  std::span<const float> prior_;
  const simd::KernelTable& kern_;
  bool causal_;
  std::int64_t P_, W_, chunks_, chunk_rows_, state_floats_;
  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<Scratch>> slots_;
};

}  // namespace

template <class Q, class KV>
AttentionStats run_linear_attention(const AttentionShape& shape, const AttentionOptions& options,
                                    const HeadsView<const Q>& q, const HeadsView<const KV>& k,
                                    const HeadsView<const KV>& v, const HeadsView<float>& out,
                                    std::span<const float> prior) {
  LinearRunner<Q, KV> runner(shape, options, q, k, v, out, prior);
  return run_on_threads(options.threads, [&] { return runner.run(); });
}

template <class KV>
std::vector<float> linear_key_state(const AttentionShape& shape, const AttentionOptions& options,
                                    const HeadsView<const KV>& k, const HeadsView<const KV>& v) {
  const HeadsView<const KV> no_queries;
  const HeadsView<float> no_out;
  const LinearRunner<KV, KV> runner(shape, options, no_queries, k, v, no_out, {});
  const std::int64_t floats = shape.d * shape.dv + shape.d;
  std::vector<float> state(static_cast<std::size_t>(shape.batch * shape.kv_heads * floats));
  run_on_threads(options.threads, [&] {
    tbb::parallel_for(std::int64_t{0}, shape.batch * shape.kv_heads, [&](std::int64_t head) {
      runner.key_state(head / shape.kv_heads, head % shape.kv_heads, state.data() + head * floats);
    });
    return 0;
  });
  return state;
}

#define LONGATTN_LINEAR(Q, KV)                                                                                     \
  template AttentionStats run_linear_attention(const AttentionShape&, const AttentionOptions&,                    \
                                               const HeadsView<const Q>&, const HeadsView<const KV>&,             \
                                               const HeadsView<const KV>&, const HeadsView<float>&,               \
                                               std::span<const float>);
LONGATTN_LINEAR(float, float)
LONGATTN_LINEAR(bf16, bf16)
LONGATTN_LINEAR(float, bf16)
#undef LONGATTN_LINEAR
template std::vector<float> linear_key_state(const AttentionShape&, const AttentionOptions&,
                                             const HeadsView<const float>&, const HeadsView<const float>&);
template std::vector<float> linear_key_state(const AttentionShape&, const AttentionOptions&,
                                             const HeadsView<const bf16>&, const HeadsView<const bf16>&);

}  // namespace longattn::engine
