// KvCache and cached_attention from Python: a paged cache that appends keys and values from
// any float32 or bfloat16 array and answers a batch of sequences' queries from its pages.
// Attention runs without the GIL and with other attention calls on the same cache; an append,
// fork or drop waits for them and runs alone (the C++ cache is not safe to change while read).
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>

#include "python/options.hpp"

using namespace nanobind::literals;

namespace longattn::python {
namespace {

// The cache with the lock that orders its readers and writers.
struct SharedCache {
  explicit SharedCache(const KvCacheConfig& config) : cache(config) {}
  KvCache cache;
  mutable std::shared_mutex mutex;
};

// f(cache) with the GIL released: alone (`kWrite`), or beside other readers.
template <bool kWrite, class Cache, class F>
auto locked(Cache& self, F f) {
  const nb::gil_scoped_release released;
  if constexpr (kWrite) {
    const std::unique_lock lock(self.mutex);
    return f(self.cache);
  } else {
    const std::shared_lock lock(self.mutex);
    return f(self.cache);
  }
}

// Appends k and v, both float32 or both bfloat16 (`bf16_bits`: NumPy's uint16 bits of it).
void append(SharedCache& self, SequenceId sequence, std::int64_t layer, const Input& k, const Input& v,
            bool bf16_bits) {
  const Element element = element_of(k, "k", bf16_bits);
  if (element_of(v, "v", bf16_bits) != element) throw nb::type_error("k and v: expected the same element type");
  if (element == Element::f32) {
    const auto kv = view_of<const float, 4>(k, "k"), vv = view_of<const float, 4>(v, "v");
    return locked<true>(self, [&](KvCache& cache) { cache.append(sequence, layer, kv, vv); });
  }
  const auto kv = view_of<const bf16, 4>(k, "k"), vv = view_of<const bf16, 4>(v, "v");
  locked<true>(self, [&](KvCache& cache) { cache.append(sequence, layer, kv, vv); });
}

// (k, v) [1, kv_heads, length, d|dv] float32 NumPy arrays of the sequence's layer, as attention
// reads them: the length and the rows under one lock, so an append cannot come between.
nb::tuple read(const SharedCache& self, SequenceId sequence, std::int64_t layer) {
  const KvCacheConfig& config = self.cache.config();
  const std::int64_t h = config.kv_heads, d = config.d, dv = config.dv > 0 ? config.dv : config.d;
  std::unique_ptr<float[]> k, v;
  std::int64_t n = 0;
  locked<false>(self, [&](const KvCache& cache) {
    n = cache.length(sequence, layer);
    k = std::make_unique<float[]>(static_cast<std::size_t>(h * n * d));
    v = std::make_unique<float[]>(static_cast<std::size_t>(h * n * dv));
    cache.read(sequence, layer, {k.get(), {1, h, n, d}, {h * n * d, n * d, d, 1}},
               {v.get(), {1, h, n, dv}, {h * n * dv, n * dv, dv, 1}});
  });
  auto numpy = [](std::unique_ptr<float[]> data, std::int64_t heads, std::int64_t rows, std::int64_t width) {
    float* raw = data.release();
    const nb::capsule owner(raw, [](void* p) noexcept { delete[] static_cast<float*>(p); });
    const std::size_t shape[4] = {1, std::size_t(heads), std::size_t(rows), std::size_t(width)};
    return nb::ndarray<nb::numpy, float, nb::ndim<4>>(raw, 4, shape, owner);
  };
  return nb::make_tuple(numpy(std::move(k), h, n, d), numpy(std::move(v), h, n, dv));
}

AttentionStats attend(const SharedCache& self, std::int64_t layer, const Input& sequences, const Input& q,
                      const Array& out, const std::optional<Array>& lse, const Options& options, bool bf16_bits) {
  if (!is(sequences, nb::dlpack::dtype_code::Int, 64) || sequences.ndim() != 1 ||
      (sequences.shape(0) > 1 && sequences.stride(0) != 1)) {
    throw nb::type_error("sequences: expected a contiguous 1-d int64 array");
  }
  const Element qe = element_of(q, "q", bf16_bits);
  if (!is(out, nb::dlpack::dtype_code::Float, 32)) throw nb::type_error("out: expected float32");
  if (lse && !is(*lse, nb::dlpack::dtype_code::Float, 32)) throw nb::type_error("lse: expected float32");
  const std::span<const SequenceId> ids(static_cast<const SequenceId*>(sequences.data()), sequences.shape(0));
  const AttentionOptions o = options.build();
  const auto ov = view_of<float, 4>(out, "out");
  const TensorView<float, 3> lv = lse ? view_of<float, 3>(*lse, "lse") : TensorView<float, 3>{};
  return locked<false>(self, [&](const KvCache& cache) {
    if (qe == Element::bf16) return cached_attention(cache, layer, ids, view_of<const bf16, 4>(q, "q"), ov, o, lv);
    return cached_attention(cache, layer, ids, view_of<const float, 4>(q, "q"), ov, o, lv);
  });
}

nb::dict memory_of(const SharedCache& self) {
  const KvCacheMemory m = locked<false>(self, [](const KvCache& cache) { return cache.memory(); });
  nb::dict d;
  d["pages"] = m.pages;
  d["page_bytes"] = m.page_bytes;
  d["bytes"] = m.bytes;
  d["reserved_bytes"] = m.reserved_bytes;
  d["tokens"] = m.tokens;
  d["bytes_per_token"] = m.bytes_per_token;
  return d;
}

}  // namespace

void bind_kv_cache(nb::module_& m) {
  nb::class_<SharedCache>(m, "KvCache")
      .def("__init__",
           [](SharedCache* self, std::int64_t layers, std::int64_t kv_heads, std::int64_t d, std::int64_t dv,
              std::int64_t page_tokens, const std::string& type, const std::string& rope, double rope_base) {
             new (self) SharedCache({.layers = layers, .kv_heads = kv_heads, .d = d, .dv = dv,
                                     .page_tokens = page_tokens, .type = parse_cache_type(type),
                                     .rope = {.pairing = parse_rope_pairing(rope), .base = rope_base}});
           },
           "layers"_a, "kv_heads"_a, "d"_a, "dv"_a, "page_tokens"_a, "type"_a, "rope"_a, "rope_base"_a)
      .def("add_sequence", [](SharedCache& self) { return locked<true>(self, [](KvCache& c) { return c.add_sequence(); }); })
      .def("fork",
           [](SharedCache& self, SequenceId parent) {
             return locked<true>(self, [&](KvCache& c) { return c.fork(parent); });
           },
           "parent"_a)
      .def("drop",
           [](SharedCache& self, SequenceId sequence) { locked<true>(self, [&](KvCache& c) { c.drop(sequence); }); },
           "sequence"_a)
      .def("contains",
           [](const SharedCache& self, SequenceId sequence) {
             return locked<false>(self, [&](const KvCache& c) { return c.contains(sequence); });
           },
           "sequence"_a)
      .def("length",
           [](const SharedCache& self, SequenceId sequence, std::int64_t layer) {
             return locked<false>(self, [&](const KvCache& c) { return c.length(sequence, layer); });
           },
           "sequence"_a, "layer"_a)
      .def("memory", &memory_of)
      .def("append", &append, "sequence"_a, "layer"_a, "k"_a, "v"_a, "bf16_bits"_a)
      .def("read", &read, "sequence"_a, "layer"_a)
      .def("attention", &attend, "layer"_a, "sequences"_a, "q"_a, "out"_a, "lse"_a.none(), "options"_a, "bf16_bits"_a);
}

}  // namespace longattn::python
