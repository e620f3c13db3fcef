#include "mpi/ring_linear.hpp"

#include <algorithm>
#include <numeric>
#include <vector>

#include "engine/linear_attention.hpp"

namespace longattn::mpi {
namespace {

// One segment of this rank's rows: where it lies in the tensors and in the sequence, and the
// options of a call on it alone (key_lengths in its own rows).
struct Segment {
  std::int64_t first = 0, start = 0, rows = 0;
  engine::AttentionShape shape;
  AttentionOptions options;
  std::vector<std::int64_t> lengths;
};

std::vector<Segment> segments_of(const RingSlice& slice, const engine::AttentionShape& s,
                                 const AttentionOptions& options) {
  std::vector<Segment> segments;
  std::int64_t first = 0;
  for (const auto& [start, rows] : slice.segments) {
    Segment& segment = segments.emplace_back(Segment{first, start, rows, s, options, {}});
    segment.shape.nq = segment.shape.nk = rows;
    for (std::int64_t length : options.key_lengths) segment.lengths.push_back(std::clamp<std::int64_t>(length - start, 0, rows));
    first += rows;
  }
  for (Segment& segment : segments) segment.options.key_lengths = segment.lengths;  // after the vector settled
  return segments;
}

}  // namespace

template <class T>
AttentionStats linear_ring(MPI_Comm comm, const RingLayout& layout, const RingSlice& slice,
                           const HeadsView<const T>& q, const HeadsView<const T>& k, const HeadsView<const T>& v,
                           const HeadsView<float>& out, const AttentionOptions& options) {
  const engine::AttentionShape& s = layout.shape;
  const std::int64_t state_floats = s.batch * s.kv_heads * (s.d * s.dv + s.d);
  std::vector<Segment> segments = segments_of(slice, s, options);
  std::vector<float> mine;
  for (const Segment& g : segments) {
    const std::vector<float> state = g.rows == 0 ? std::vector<float>(static_cast<std::size_t>(state_floats), 0.0f)
                                                 : engine::linear_key_state(g.shape, g.options, narrow(k, 2, g.first, g.rows),
                                                                            narrow(v, 2, g.first, g.rows));
    mine.insert(mine.end(), state.begin(), state.end());
  }
  // Every segment's state, by rank and then in each rank's order, with where it starts.
  std::vector<int> counts(layout.ranks), displacements(layout.ranks);
  std::vector<std::array<std::int64_t, 2>> all_segments;
  for (int r = 0, total = 0; r < layout.ranks; ++r) {
    const auto& theirs = layout.slices[r].segments;
    counts[r] = static_cast<int>(theirs.size() * state_floats);
    displacements[r] = total;
    total += counts[r];
    all_segments.insert(all_segments.end(), theirs.begin(), theirs.end());
  }
  std::vector<float> states(all_segments.size() * static_cast<std::size_t>(state_floats));
  MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_FLOAT, states.data(), counts.data(),
                 displacements.data(), MPI_FLOAT, comm);
  // Summed in sequence order, so that every rank adds in the same order.
  std::vector<std::size_t> order(all_segments.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return all_segments[a] < all_segments[b]; });
  const bool causal = options.window == Window::causal();
  AttentionStats stats;
  std::vector<float> prior(static_cast<std::size_t>(state_floats));
  for (const Segment& g : segments) {
    if (g.rows == 0) continue;
    std::fill(prior.begin(), prior.end(), 0.0f);
    for (std::size_t other : order) {
      const auto [start, rows] = all_segments[other];
      if (rows == 0 || start == g.start || (causal && start > g.start)) continue;
      const float* state = states.data() + other * static_cast<std::size_t>(state_floats);
      for (std::int64_t i = 0; i < state_floats; ++i) prior[i] += state[i];
      for (std::int64_t b = 0; b < s.batch; ++b) {  // each of the segment's queries sees these keys too
        const std::int64_t keys = options.key_lengths.empty() ? rows : std::clamp<std::int64_t>(options.key_lengths[b] - start, 0, rows);
        stats.visible_pairs += keys * g.rows * s.q_heads;
      }
    }
    const AttentionStats one = engine::run_linear_attention(g.shape, g.options, narrow(q, 2, g.first, g.rows),
                                                            narrow(k, 2, g.first, g.rows), narrow(v, 2, g.first, g.rows),
                                                            narrow(out, 2, g.first, g.rows), prior);
    stats.flops += one.flops;
    stats.visible_pairs += one.visible_pairs;
    stats.scratch_bytes = std::max(stats.scratch_bytes, one.scratch_bytes);
    stats.isa = one.isa;
  }
  return stats;
}

template AttentionStats linear_ring(MPI_Comm, const RingLayout&, const RingSlice&, const HeadsView<const float>&,
                                    const HeadsView<const float>&, const HeadsView<const float>&,
                                    const HeadsView<float>&, const AttentionOptions&);
template AttentionStats linear_ring(MPI_Comm, const RingLayout&, const RingSlice&, const HeadsView<const bf16>&,
                                    const HeadsView<const bf16>&, const HeadsView<const bf16>&,
                                    const HeadsView<float>&, const AttentionOptions&);

}  // namespace longattn::mpi
