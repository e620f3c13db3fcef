// The paged key-value cache: sequences' page tables over a pool of pages shared by reference
// count, appends that quantize (int8), round (bf16) and rotate (RoPE) rows once as they arrive.
#include "longattn/kv_cache.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "engine/kv_cache_store.hpp"
#include "longattn/error.hpp"

namespace longattn {
namespace {

using engine::CachedLayer;
using engine::CachedSequence;
using engine::PageLayout;

[[noreturn]] void fail(const std::string& what) { throw Error("KvCache: " + what); }

constexpr std::int64_t kLine = 64;

std::int64_t round_to_line(std::int64_t bytes) { return (bytes + kLine - 1) / kLine * kLine; }

std::int64_t element_bytes(CacheType type) {
  switch (type) {
    case CacheType::fp32: return 4;
    case CacheType::bf16: return 2;
    case CacheType::int8: return 1;
  }
  return 4;
}

KvCacheConfig checked(KvCacheConfig config) {
  auto at_least = [](std::int64_t value, std::int64_t least, const char* field) {
    if (value < least) {
      fail(std::string("config.") + field + ": expected >= " + std::to_string(least) + ", got " + std::to_string(value));
    }
  };
  at_least(config.layers, 1, "layers");
  at_least(config.kv_heads, 1, "kv_heads");
  at_least(config.d, 1, "d");
  at_least(config.dv, 0, "dv");
  if (config.dv == 0) config.dv = config.d;
  const std::int64_t P = config.page_tokens;
  if (P < 16 || P > 256 || (P & (P - 1)) != 0) {
    fail("config.page_tokens: expected a power of two from 16 to 256, got " + std::to_string(P));
  }
  if (config.rope.enabled() && config.d % 2 != 0) {
    fail("config.rope: rotates pairs of features, so d must be even, got " + std::to_string(config.d));
  }
  return config;
}

template <class T>
float as_float(T x) {
  return static_cast<float>(x);
}

// Row t of head h of a [1, H, T, width] view as fp32.
template <class T>
void read_row(const HeadsView<const T>& view, std::int64_t h, std::int64_t t, float* row) {
  const T* from = view.data + h * view.strides[1] + t * view.strides[2];
  for (std::int64_t c = 0; c < view.shape[3]; ++c) row[c] = as_float(from[c * view.strides[3]]);
}

// Stores an fp32 row as the cache's type; int8 with its scale max |x| / 127.
void store_row(CacheType type, const float* row, std::int64_t width, std::byte* to, std::byte* scale) {
  if (type == CacheType::fp32) {
    std::memcpy(to, row, static_cast<std::size_t>(width) * sizeof(float));
  } else if (type == CacheType::bf16) {
    auto* out = reinterpret_cast<bf16*>(to);
    for (std::int64_t c = 0; c < width; ++c) out[c] = bf16(row[c]);
  } else {
    float most = 0.0f;
    for (std::int64_t c = 0; c < width; ++c) most = std::max(most, std::fabs(row[c]));
    const float factor = most > 0.0f ? 127.0f / most : 0.0f, step = most / 127.0f;
    auto* out = reinterpret_cast<std::int8_t*>(to);
    for (std::int64_t c = 0; c < width; ++c) {
      out[c] = static_cast<std::int8_t>(std::clamp(std::nearbyint(row[c] * factor), -127.0f, 127.0f));
    }
    std::memcpy(scale, &step, sizeof(float));
  }
}

// The stored row back as fp32, as the attention driver reads it.
void load_row(CacheType type, const std::byte* from, const std::byte* scale, std::int64_t width, float* row) {
  if (type == CacheType::fp32) {
    std::memcpy(row, from, static_cast<std::size_t>(width) * sizeof(float));
  } else if (type == CacheType::bf16) {
    const auto* in = reinterpret_cast<const bf16*>(from);
    for (std::int64_t c = 0; c < width; ++c) row[c] = static_cast<float>(in[c]);
  } else {
    float step;
    std::memcpy(&step, scale, sizeof(float));
    const auto* in = reinterpret_cast<const std::int8_t*>(from);
    for (std::int64_t c = 0; c < width; ++c) row[c] = step * static_cast<float>(in[c]);
  }
}

}  // namespace

namespace engine {

PageLayout::PageLayout(const KvCacheConfig& config)
    : tokens(config.page_tokens), kv_heads(config.kv_heads), d(config.d), dv(config.dv),
      element_bytes(longattn::element_bytes(config.type)) {
  key_head_bytes = round_to_line(tokens * d * element_bytes);
  value_head_bytes = round_to_line(tokens * dv * element_bytes);
  scale_head_bytes = config.type == CacheType::int8 ? round_to_line(tokens * 4) : 0;
  values_offset = kv_heads * key_head_bytes;
  key_scales_offset = values_offset + kv_heads * value_head_bytes;
  value_scales_offset = key_scales_offset + kv_heads * scale_head_bytes;
  bytes = value_scales_offset + kv_heads * scale_head_bytes;
}

}  // namespace engine

std::string to_string(CacheType type) {
  switch (type) {
    case CacheType::fp32: return "fp32";
    case CacheType::bf16: return "bf16";
    case CacheType::int8: return "int8";
  }
  return "?";
}

CacheType parse_cache_type(const std::string& name) {
  if (name == "fp32") return CacheType::fp32;
  if (name == "bf16") return CacheType::bf16;
  if (name == "int8") return CacheType::int8;
  throw Error("cache type: expected fp32, bf16 or int8, got " + name);
}

const CachedSequence& KvCache::Impl::sequence(SequenceId id, const char* what) const {
  if (id < 0 || id >= static_cast<SequenceId>(sequences.size()) || !sequences[id].live) {
    fail(std::string(what) + ": sequence " + std::to_string(id) + " is not in the cache (never added, or dropped)");
  }
  return sequences[id];
}

const CachedLayer& KvCache::Impl::layer(SequenceId id, std::int64_t layer, const char* what) const {
  const CachedSequence& s = sequence(id, what);
  if (layer < 0 || layer >= config.layers) {
    fail(std::string(what) + ": layer " + std::to_string(layer) + " outside [0, " + std::to_string(config.layers) + ")");
  }
  return s.layers[layer];
}

std::vector<const std::byte*> KvCache::Impl::page_starts(SequenceId id, std::int64_t layer) const {
  std::vector<const std::byte*> starts;
  for (std::int32_t page : sequences[id].layers[layer].pages) starts.push_back(pages[page].data);
  return starts;
}

KvCache::KvCache(const KvCacheConfig& config) : impl_(std::make_unique<Impl>()) {
  impl_->config = checked(config);
  impl_->layout = engine::PageLayout(impl_->config);
  impl_->slabs = engine::PageSlabs(impl_->layout.bytes);
}
KvCache::~KvCache() = default;
KvCache::KvCache(KvCache&&) noexcept = default;
KvCache& KvCache::operator=(KvCache&&) noexcept = default;

const KvCacheConfig& KvCache::config() const { return impl_->config; }
const KvCache::Impl& KvCache::impl() const { return *impl_; }

SequenceId KvCache::add_sequence() {
  CachedSequence s;
  s.live = true;
  s.layers.resize(static_cast<std::size_t>(impl_->config.layers));
  impl_->sequences.push_back(std::move(s));
  return static_cast<SequenceId>(impl_->sequences.size()) - 1;
}

SequenceId KvCache::fork(SequenceId parent) {
  CachedSequence child = impl_->sequence(parent, "fork");
  for (const CachedLayer& layer : child.layers) {
    for (std::int32_t page : layer.pages) ++impl_->pages[page].references;
  }
  impl_->sequences.push_back(std::move(child));
  return static_cast<SequenceId>(impl_->sequences.size()) - 1;
}

void KvCache::drop(SequenceId sequence) {
  impl_->sequence(sequence, "drop");
  CachedSequence& s = impl_->sequences[sequence];
  for (CachedLayer& layer : s.layers) {
    for (std::int32_t page : layer.pages) {
      engine::CachePage& p = impl_->pages[page];
      if (--p.references == 0) {  // the slot is reused; the slab's memory goes back once its pages are all free
        impl_->slabs.release(p.slab, p.data);
        p.data = nullptr;
        impl_->free_pages.push_back(page);
      }
    }
  }
  s = CachedSequence{};
}

namespace {

// Pages made for an append before anything is written, given back if the append fails.
class NewPages {
 public:
  explicit NewPages(KvCache::Impl& cache) : cache_(cache) {}
  ~NewPages() {
    for (std::int32_t page : made_) release(page);
  }

  std::int32_t make() {
    std::int32_t slab = -1;
    std::byte* memory = nullptr;
    try {
      memory = cache_.slabs.allocate(slab);
    } catch (const std::bad_alloc&) {
      fail("append: out of memory for a page of " + std::to_string(cache_.layout.bytes) + " bytes");
    }
    std::int32_t page;
    if (!cache_.free_pages.empty()) {
      page = cache_.free_pages.back();
      cache_.free_pages.pop_back();
    } else {
      page = static_cast<std::int32_t>(cache_.pages.size());
      cache_.pages.emplace_back();
    }
    cache_.pages[page] = {memory, slab, 1};
    made_.push_back(page);
    return page;
  }
  void keep() { made_.clear(); }

 private:
  void release(std::int32_t page) {
    engine::CachePage& p = cache_.pages[page];
    cache_.slabs.release(p.slab, p.data);
    p = {};
    cache_.free_pages.push_back(page);
  }
  KvCache::Impl& cache_;
  std::vector<std::int32_t> made_;
};

template <class T>
void check_rows(const KvCache::Impl& cache, const HeadsView<const T>& view, std::int64_t width, const char* name,
                std::int64_t tokens) {
  const KvCacheConfig& c = cache.config;
  if (view.shape[0] != 1 || view.shape[1] != c.kv_heads || view.shape[2] != tokens || view.shape[3] != width) {
    fail(std::string("append: ") + name + " must be [1, " + std::to_string(c.kv_heads) + ", T, " +
         std::to_string(width) + "], got [" + std::to_string(view.shape[0]) + ", " + std::to_string(view.shape[1]) +
         ", " + std::to_string(view.shape[2]) + ", " + std::to_string(view.shape[3]) + "]");
  }
  if (view.data == nullptr && view.size() > 0) fail(std::string("append: ") + name + " has no data");
  if (c.type != CacheType::int8) return;
  for (std::int64_t h = 0; h < c.kv_heads; ++h) {
    for (std::int64_t t = 0; t < tokens; ++t) {
      const T* row = view.data + h * view.strides[1] + t * view.strides[2];
      for (std::int64_t e = 0; e < width; ++e) {
        if (!std::isfinite(as_float(row[e * view.strides[3]]))) {
          fail(std::string("append: ") + name + "[0, " + std::to_string(h) + ", " + std::to_string(t) + ", " +
               std::to_string(e) + "] is not finite: an int8 cache cannot quantize it");
        }
      }
    }
  }
}

template <class T>
void append_rows(KvCache::Impl& cache, SequenceId id, std::int64_t layer_index, const HeadsView<const T>& k,
                 const HeadsView<const T>& v) {
  const KvCacheConfig& c = cache.config;
  const CachedLayer& before = cache.layer(id, layer_index, "append");
  const std::int64_t tokens = k.shape[2], P = c.page_tokens, length = before.length;
  check_rows(cache, k, c.d, "k", tokens);
  check_rows(cache, v, c.dv, "v", tokens);
  if (tokens == 0) return;

  // Every page and table the append needs, made before a row is written.
  std::vector<std::int32_t> table = before.pages;
  NewPages made(cache);
  const bool copy_on_write = length % P != 0 && cache.pages[table.back()].references > 1;
  if (copy_on_write) {  // the last page is shared with a fork: this sequence writes its own copy
    const std::int32_t shared = table.back(), own = made.make();
    std::memcpy(cache.pages[own].data, cache.pages[shared].data, static_cast<std::size_t>(cache.layout.bytes));
    table.back() = own;
  }
  while (static_cast<std::int64_t>(table.size()) * P < length + tokens) table.push_back(made.make());
  if (c.rope.enabled() && cache.rope_positions < length + tokens) {
    const std::int64_t positions = std::max(2 * cache.rope_positions, length + tokens);
    cache.rope = engine::RotaryTable(c.rope, c.d, positions);
    cache.rope_positions = positions;
  }

  const PageLayout& at = cache.layout;
  std::vector<float> row(static_cast<std::size_t>(std::max(c.d, c.dv)));
  for (std::int64_t t = 0; t < tokens; ++t) {
    const std::int64_t position = length + t, slot = position % P;
    std::byte* page = cache.pages[table[position / P]].data;
    for (std::int64_t h = 0; h < c.kv_heads; ++h) {
      read_row(k, h, t, row.data());
      if (c.rope.enabled()) cache.rope.rotate(row.data(), 1, position, 1.0f, row.data());
      store_row(c.type, row.data(), c.d, page + at.key_row(h, slot), page + at.key_scale(h, slot));
      read_row(v, h, t, row.data());
      store_row(c.type, row.data(), c.dv, page + at.value_row(h, slot), page + at.value_scale(h, slot));
    }
  }
  CachedLayer& layer = cache.sequences[id].layers[layer_index];
  if (copy_on_write) --cache.pages[layer.pages.back()].references;  // still held by the fork
  layer.pages = std::move(table);
  layer.length = length + tokens;
  made.keep();
}

}  // namespace

void KvCache::append(SequenceId sequence, std::int64_t layer, HeadsView<const float> k, HeadsView<const float> v) {
  append_rows(*impl_, sequence, layer, k, v);
}
void KvCache::append(SequenceId sequence, std::int64_t layer, HeadsView<const bf16> k, HeadsView<const bf16> v) {
  append_rows(*impl_, sequence, layer, k, v);
}

std::int64_t KvCache::length(SequenceId sequence, std::int64_t layer) const {
  return impl_->layer(sequence, layer, "length").length;
}

bool KvCache::contains(SequenceId sequence) const {
  return sequence >= 0 && sequence < static_cast<SequenceId>(impl_->sequences.size()) && impl_->sequences[sequence].live;
}

KvCacheMemory KvCache::memory() const {
  const KvCacheConfig& c = impl_->config;
  KvCacheMemory m;
  for (const engine::CachePage& page : impl_->pages) m.pages += page.references > 0;
  m.page_bytes = impl_->layout.bytes;
  m.bytes = m.pages * m.page_bytes;
  m.reserved_bytes = impl_->slabs.reserved_bytes();
  for (const CachedSequence& s : impl_->sequences) {
    for (const CachedLayer& layer : s.layers) m.tokens += layer.length;
  }
  const std::int64_t scales = c.type == CacheType::int8 ? 2 * 4 : 0;
  m.bytes_per_token = c.layers * c.kv_heads * ((c.d + c.dv) * element_bytes(c.type) + scales);
  return m;
}

void KvCache::read(SequenceId sequence, std::int64_t layer_index, HeadsView<float> k, HeadsView<float> v) const {
  const CachedLayer& layer = impl_->layer(sequence, layer_index, "read");
  const KvCacheConfig& c = impl_->config;
  auto check = [&](const HeadsView<float>& view, std::int64_t width, const char* name) {
    if (view.shape[0] != 1 || view.shape[1] != c.kv_heads || view.shape[2] != layer.length || view.shape[3] != width) {
      fail(std::string("read: ") + name + " must be [1, kv_heads, length, " + std::to_string(width) + "]");
    }
  };
  check(k, c.d, "k");
  check(v, c.dv, "v");
  const PageLayout& at = impl_->layout;
  std::vector<float> row(static_cast<std::size_t>(std::max(c.d, c.dv)));
  for (std::int64_t t = 0; t < layer.length; ++t) {
    const std::byte* page = impl_->pages[layer.pages[t / c.page_tokens]].data;
    const std::int64_t slot = t % c.page_tokens;
    for (std::int64_t h = 0; h < c.kv_heads; ++h) {
      load_row(c.type, page + at.key_row(h, slot), page + at.key_scale(h, slot), c.d, row.data());
      for (std::int64_t e = 0; e < c.d; ++e) k.data[h * k.strides[1] + t * k.strides[2] + e * k.strides[3]] = row[e];
      load_row(c.type, page + at.value_row(h, slot), page + at.value_scale(h, slot), c.dv, row.data());
      for (std::int64_t e = 0; e < c.dv; ++e) v.data[h * v.strides[1] + t * v.strides[2] + e * v.strides[3]] = row[e];
    }
  }
}

}  // namespace longattn
