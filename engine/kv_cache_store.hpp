// What a KvCache keeps: pages with reference counts, and per sequence and layer a page table
// and a length. The attention driver reads a sequence's pages through the layout below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "engine/page_slabs.hpp"
#include "engine/positional_encoding.hpp"
#include "longattn/kv_cache.hpp"

namespace longattn::engine {

// Where a token's rows lie in a page, in bytes from the page's start; every kv head's block
// of rows starts on a cache line.
struct PageLayout {
  std::int64_t tokens = 0, kv_heads = 0, d = 0, dv = 0;
  std::int64_t element_bytes = 0;        // 4, 2 or 1
  std::int64_t key_head_bytes = 0;       // one kv head's key rows, rounded up to a line
  std::int64_t value_head_bytes = 0;
  std::int64_t scale_head_bytes = 0;     // int8: one kv head's fp32 scales of its tokens
  std::int64_t values_offset = 0, key_scales_offset = 0, value_scales_offset = 0;
  std::int64_t bytes = 0;                // of a whole page

  PageLayout() = default;
  PageLayout(const KvCacheConfig& config);

  std::int64_t key_row(std::int64_t h, std::int64_t slot) const { return h * key_head_bytes + slot * d * element_bytes; }
  std::int64_t value_row(std::int64_t h, std::int64_t slot) const {
    return values_offset + h * value_head_bytes + slot * dv * element_bytes;
  }
  std::int64_t key_scale(std::int64_t h, std::int64_t slot) const {
    return key_scales_offset + h * scale_head_bytes + slot * 4;
  }
  std::int64_t value_scale(std::int64_t h, std::int64_t slot) const {
    return value_scales_offset + h * scale_head_bytes + slot * 4;
  }
};

// A page: its memory in one of the cache's slabs, and how many sequences hold it.
struct CachePage {
  std::byte* data = nullptr;
  std::int32_t slab = -1;
  std::int64_t references = 0;  // 0: free
};

struct CachedLayer {
  std::vector<std::int32_t> pages;  // page table: token t lies in pages[t / page_tokens]
  std::int64_t length = 0;
};

struct CachedSequence {
  bool live = false;
  std::vector<CachedLayer> layers;
};

}  // namespace longattn::engine

namespace longattn {

struct KvCache::Impl {
  KvCacheConfig config;
  engine::PageLayout layout;
  engine::PageSlabs slabs;
  std::vector<engine::CachePage> pages;
  std::vector<std::int32_t> free_pages;
  std::vector<engine::CachedSequence> sequences;  // indexed by SequenceId
  // RoPE angles for positions below rope_positions, grown as sequences grow.
  engine::RotaryTable rope;
  std::int64_t rope_positions = 0;

  // The sequence, or an Error naming `what` when it is not live.
  const engine::CachedSequence& sequence(SequenceId id, const char* what) const;
  const engine::CachedLayer& layer(SequenceId id, std::int64_t layer, const char* what) const;
  // Start of each page of the sequence's layer, in order.
  std::vector<const std::byte*> page_starts(SequenceId id, std::int64_t layer) const;
};

}  // namespace longattn
