// Attention against a KvCache: one plan per sequence, as packed sequences run, over its pages.
// Decoding reads the pages in place through the split-key driver; a chunk of queries too
// many for that copies its sequence's pages once into scratch and runs as attention() does.
#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/attention_validation.hpp"
#include "engine/flash_attention.hpp"
#include "engine/input_elements.hpp"
#include "engine/key_pages.hpp"
#include "longattn/error.hpp"
#include "longattn/kv_cache.hpp"

namespace longattn {
namespace {

[[noreturn]] void fail(const std::string& what) { throw Error("cached_attention: " + what); }


// Options that name tensors or positions the cache replaces.
void reject_tensor_options(const AttentionOptions& o) {
  auto reject = [](bool given, const char* field, const char* why) {
    if (given) fail(std::string("options.") + field + ": " + why);
  };
  const char* cache_keys = "indexes keys the cache holds; not with a cache";
  reject(!o.key_lengths.empty(), "key_lengths", "each sequence's length is the cache's");
  reject(!o.mask.empty(), "mask", cache_keys);
  reject(o.block_sparse.enabled(), "block_sparse", cache_keys);
  reject(o.additive.enabled(), "additive", "projects keys as they are packed; not with a cache");
  reject(!o.score_bias.empty(), "score_bias", cache_keys);
  reject(!o.cu_seqlens_q.empty() || !o.cu_seqlens_k.empty(), "cu_seqlens_q",
         "the sequences of a cache are given by their ids");
  reject(o.positions.query_start.has_value() || o.positions.key_start != 0, "positions",
         "queries sit at the end of their sequence");
  reject(o.rope.enabled(), "rope", "the cache's own (KvCacheConfig::rope) rotates keys as appended and queries here");
  reject(o.normalizer == Normalizer::linear, "normalizer", "linear attention keeps a running state, not a cache");
}

template <class Q, class O>
void check_views(const KvCacheConfig& c, std::int64_t sequences, const HeadsView<const Q>& q, const HeadsView<O>& out,
                 const TensorView<float, 3>& lse) {
  auto dims = [](const auto& view) {
    std::string text = "[";
    for (std::size_t i = 0; i < view.shape.size(); ++i) text += (i ? ", " : "") + std::to_string(view.shape[i]);
    return text + "]";
  };
  if (q.shape[0] != sequences || q.shape[1] < 1 || q.shape[1] % c.kv_heads != 0 || q.shape[3] != c.d) {
    fail("q: expected [" + std::to_string(sequences) + " sequences, a multiple of " + std::to_string(c.kv_heads) +
         " heads, nq, d = " + std::to_string(c.d) + "], got " + dims(q));
  }
  if (out.shape != std::array{q.shape[0], q.shape[1], q.shape[2], c.dv}) {
    fail("out: expected [" + std::to_string(q.shape[0]) + ", " + std::to_string(q.shape[1]) + ", " +
         std::to_string(q.shape[2]) + ", " + std::to_string(c.dv) + "], got " + dims(out));
  }
  if ((q.data == nullptr || out.data == nullptr) && q.size() > 0) fail("q and out need data");
  if (!lse.empty() && lse.shape != std::array{q.shape[0], q.shape[1], q.shape[2]}) {
    fail("lse: expected [" + std::to_string(q.shape[0]) + ", " + std::to_string(q.shape[1]) + ", " +
         std::to_string(q.shape[2]) + "], got " + dims(lse));
  }
}

// Keys' place in a contiguous [1, kv_heads, length, width] tensor: what the plan's schedule is
// chosen for (the pages' rows are read through KeyPages), or where a chunk's copy lies.
template <class KV>
HeadsView<const KV> dense_view(const KV* data, const KvCacheConfig& c, std::int64_t length, std::int64_t width) {
  return bhnd(data, 1, c.kv_heads, length, width);
}

// A sequence's queries turned at their positions (its last nq), as its keys were when appended.
HeadsView<const float> rotated_queries(const KvCache::Impl& cache, const HeadsView<const float>& q, std::int64_t length,
                                       std::vector<float>& buffer) {
  const std::int64_t heads = q.shape[1], nq = q.shape[2], d = q.shape[3];
  buffer.resize(static_cast<std::size_t>(heads * nq * d));
  for (std::int64_t h = 0; h < heads; ++h) {
    for (std::int64_t i = 0; i < nq; ++i) {
      cache.rope.rotate(q.data + h * q.strides[1] + i * q.strides[2], q.strides[3], length - nq + i, 1.0f,
                        buffer.data() + (h * nq + i) * d);
    }
  }
  return bhnd<const float>(buffer.data(), 1, heads, nq, d);
}

// One sequence's queries against its pages.
template <class KV>
AttentionStats run_sequence(const KvCache::Impl& cache, const engine::KeyPages& pages,
                            const engine::FlashPlan& plan, const HeadsView<const float>& q,
                            const HeadsView<float>& out, const TensorView<float, 3>& lse, int threads) {
  const KvCacheConfig& c = cache.config;
  const std::int64_t n = pages.length;
  const auto k_shape = dense_view<KV>(nullptr, c, n, c.d), v_shape = dense_view<KV>(nullptr, c, n, c.dv);
  const engine::Schedule schedule = engine::schedule_for(plan, q, k_shape, v_shape, out, threads);
  if (schedule.kind == engine::ScheduleKind::key_splits && schedule.rows_in_place) {
    return engine::run_flash_attention(plan, q, k_shape, v_shape, out, lse, nullptr, &pages);
  }
  // Compute-bound: one copy of the keys and values, then attention() as on any tensors.
  std::vector<KV> keys(static_cast<std::size_t>(c.kv_heads * n * c.d)), values(static_cast<std::size_t>(c.kv_heads * n * c.dv));
  for (std::int64_t h = 0; h < c.kv_heads; ++h) {
    pages.copy_rows<KV>(h, 0, n, keys.data() + h * n * c.d, values.data() + h * n * c.dv);
  }
  return engine::run_flash_attention(plan, q, dense_view<KV>(keys.data(), c, n, c.d),
                                     dense_view<KV>(values.data(), c, n, c.dv), out, lse);
}

// The sequences' lengths at `layer`, each checked against the nq queries and the options
// before any output is written, as the shapes of their attention.
std::vector<engine::AttentionShape> sequence_shapes(const KvCache::Impl& store, std::int64_t layer,
                                                    std::span<const SequenceId> sequences, std::int64_t q_heads,
                                                    std::int64_t nq, const AttentionOptions& options, bool with_lse) {
  const KvCacheConfig& c = store.config;
  std::vector<engine::AttentionShape> shapes;
  for (SequenceId id : sequences) {
    const std::int64_t length = store.layer(id, layer, "cached_attention").length;
    if (length < nq) {
      fail("q: " + std::to_string(nq) + " queries are the last tokens of their sequence, but sequence " +
           std::to_string(id) + " holds " + std::to_string(length) + " at layer " + std::to_string(layer));
    }
    shapes.push_back({1, q_heads, c.kv_heads, nq, length, c.d, c.dv});
    engine::validate_options(shapes.back(), options, with_lse);
  }
  return shapes;
}

// Each sequence's queries against its pages, on checked views.
AttentionStats run_sequences(const KvCache::Impl& store, std::int64_t layer, std::span<const SequenceId> sequences,
                             const std::vector<engine::AttentionShape>& shapes, const HeadsView<const float>& q,
                             const HeadsView<float>& out, const AttentionOptions& options,
                             const TensorView<float, 3>& lse) {
  const KvCacheConfig& c = store.config;
  AttentionStats total;
  std::vector<float> rotated;
  for (std::size_t s = 0; s < sequences.size(); ++s) {
    const engine::AttentionShape& shape = shapes[s];
    HeadsView<const float> q_s = narrow(q, 0, static_cast<std::int64_t>(s), 1);
    if (c.rope.enabled()) q_s = rotated_queries(store, q_s, shape.nk, rotated);
    const engine::FlashPlan plan = engine::make_flash_plan(shape, options);
    engine::KeyPages pages{plan.kernels, &store.layout, c.type, store.page_starts(sequences[s], layer), shape.nk};
    const auto out_s = narrow(out, 0, static_cast<std::int64_t>(s), 1);
    const auto lse_s = narrow(lse, 0, static_cast<std::int64_t>(s), 1);
    if (c.type == CacheType::bf16) {
      engine::add_run(total, run_sequence<bf16>(store, pages, plan, q_s, out_s, lse_s, options.threads));
    } else {
      engine::add_run(total, run_sequence<float>(store, pages, plan, q_s, out_s, lse_s, options.threads));
    }
  }
  return total;
}

// q as the fp32 the engine reads: the caller's rows, or bf16 ones widened (exactly) into a
// contiguous copy.
HeadsView<const float> queries_in_fp32(const HeadsView<const float>& q, Isa, std::vector<float>&) { return q; }
HeadsView<const float> queries_in_fp32(const HeadsView<const bf16>& q, Isa isa, std::vector<float>& copy) {
  const simd::KernelTable& kernels = simd::kernels_for(isa);
  const std::int64_t S = q.shape[0], H = q.shape[1], n = q.shape[2], d = q.shape[3];
  copy.resize(static_cast<std::size_t>(S * H * n * d));
  for (std::int64_t r = 0; r < S * H * n; ++r) {
    const bf16* row = q.data + r / (H * n) * q.strides[0] + r / n % H * q.strides[1] + r % n * q.strides[2];
    engine::widen_row(kernels, row, q.strides[3], d, copy.data() + r * d);
  }
  return bhnd<const float>(copy.data(), S, H, n, d);
}

// out as the engine writes it: the caller's fp32 rows, or a contiguous fp32 copy of a bf16
// out's shape, rounded into it once every sequence ran.
HeadsView<float> output_in_fp32(const HeadsView<float>& out, std::vector<float>&) { return out; }
HeadsView<float> output_in_fp32(const HeadsView<bf16>& out, std::vector<float>& staged) {
  staged.resize(static_cast<std::size_t>(out.size()));
  return bhnd(staged.data(), out.shape[0], out.shape[1], out.shape[2], out.shape[3]);
}

// Every sequence checked, then run on fp32 views of q and out (bf16 queries widened first,
// a bf16 out rounded at the end).
template <class Q, class O>
AttentionStats attend(const KvCache& cache, std::int64_t layer, std::span<const SequenceId> sequences,
                      const HeadsView<const Q>& q, const HeadsView<O>& out, const AttentionOptions& options,
                      const TensorView<float, 3>& lse) {
  const KvCache::Impl& store = cache.impl();
  reject_tensor_options(options);
  check_views(store.config, static_cast<std::int64_t>(sequences.size()), q, out, lse);
  const auto shapes = sequence_shapes(store, layer, sequences, q.shape[1], q.shape[2], options, !lse.empty());
  std::vector<float> widened, staged;
  const HeadsView<const float> q32 = queries_in_fp32(q, options.isa, widened);
  AttentionStats stats = run_sequences(store, layer, sequences, shapes, q32, output_in_fp32(out, staged), options, lse);
  if constexpr (std::is_same_v<O, bf16>) engine::write_rounded(staged.data(), out);
  stats.scratch_bytes += static_cast<std::int64_t>((widened.size() + staged.size()) * sizeof(float));
  return stats;
}

}  // namespace

AttentionStats cached_attention(const KvCache& cache, std::int64_t layer, std::span<const SequenceId> sequences,
                                HeadsView<const float> q, HeadsView<float> out, const AttentionOptions& options,
                                TensorView<float, 3> lse) {
  return attend(cache, layer, sequences, q, out, options, lse);
}

AttentionStats cached_attention(const KvCache& cache, std::int64_t layer, std::span<const SequenceId> sequences,
                                HeadsView<const bf16> q, HeadsView<float> out, const AttentionOptions& options,
                                TensorView<float, 3> lse) {
  return attend(cache, layer, sequences, q, out, options, lse);
}

AttentionStats cached_attention(const KvCache& cache, std::int64_t layer, std::span<const SequenceId> sequences,
                                HeadsView<const float> q, HeadsView<bf16> out, const AttentionOptions& options,
                                TensorView<float, 3> lse) {
  return attend(cache, layer, sequences, q, out, options, lse);
}

AttentionStats cached_attention(const KvCache& cache, std::int64_t layer, std::span<const SequenceId> sequences,
                                HeadsView<const bf16> q, HeadsView<bf16> out, const AttentionOptions& options,
                                TensorView<float, 3> lse) {
  return attend(cache, layer, sequences, q, out, options, lse);
}

}  // namespace longattn
