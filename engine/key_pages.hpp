// One sequence's keys and values where a KvCache keeps them, as the split-key driver reads
// them a tile at a time: the rows where they lie when one page holds the whole tile in the
// type the decoding kernels read, else copied (int8: dequantized) into the thread's scratch.
// The kernels see the same rows either way, so a tile's bits do not depend on the pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/aligned_buffer.hpp"
#include "engine/block_scratch.hpp"
#include "engine/kv_cache_store.hpp"
#include "simd/kernel_table.hpp"

namespace longattn::engine {

struct KeyPages {
  const simd::KernelTable* kernels = nullptr;  // the plan's: int8 rows dequantized with them
  const PageLayout* layout = nullptr;
  CacheType type = CacheType::fp32;
  std::vector<const std::byte*> starts;  // each page of the sequence's layer, in order
  std::int64_t length = 0;               // tokens the sequence holds

  // Keys [j0, j1) of kv head h (rows from `length` on are never read). KV: float for fp32
  // and int8 caches, bf16 for bf16 ones.
  template <class KV>
  KeyChunk<KV> tile(AlignedBuffer& staging, std::int64_t h, std::int64_t j0, std::int64_t j1) const {
    const std::int64_t P = layout->tokens, d = layout->d, dv = layout->dv, last = std::min(j1, length);
    const std::byte* first_page = starts[j0 / P];
    if (type != CacheType::int8 && (last - 1) / P == j0 / P) {
      const std::int64_t slot = j0 % P;
      return KeyChunk<KV>{j0, j1, nullptr, nullptr, dv, as<KV>(first_page + layout->key_row(h, slot)), d,
                          as<KV>(first_page + layout->value_row(h, slot))};
    }
    const std::int64_t rows = last - j0;
    staging.resize((rows * (d + dv) * static_cast<std::int64_t>(sizeof(KV)) + 3) / 4);
    KV* keys = reinterpret_cast<KV*>(staging.data());
    KV* values = keys + rows * d;
    for (std::int64_t j = j0; j < last; ++j) {
      const std::byte* page = starts[j / P];
      const std::int64_t slot = j % P, r = j - j0;
      copy_row(page + layout->key_row(h, slot), page + layout->key_scale(h, slot), d, keys + r * d);
      copy_row(page + layout->value_row(h, slot), page + layout->value_scale(h, slot), dv, values + r * dv);
    }
    return KeyChunk<KV>{j0, j1, nullptr, nullptr, dv, keys, d, values};
  }

 private:
  template <class KV>
  static const KV* as(const std::byte* p) {
    return reinterpret_cast<const KV*>(p);
  }

  // A stored row as the kernels read it: fp32 and bf16 as they are, int8 times its scale.
  template <class KV>
  void copy_row(const std::byte* row, const std::byte* scale, std::int64_t width, KV* to) const {
    if (type != CacheType::int8) {
      std::memcpy(to, row, static_cast<std::size_t>(width) * sizeof(KV));
      return;
    }
    if constexpr (std::is_same_v<KV, float>) {
      float step;
      std::memcpy(&step, scale, sizeof(float));
      kernels->elementwise.dequantize_int8(reinterpret_cast<const std::int8_t*>(row), width, step, to);
    }
  }
};

}  // namespace longattn::engine
