// One sequence's keys and values where a KvCache keeps them, as the split-key driver reads
// them a tile at a time: the rows where they lie when one page holds the whole tile, else
// copied as they are stored into the thread's scratch. The kernels see the same rows either
// way, so a tile's bits do not depend on the pages. int8 rows are read as int8, each scaled
// by its token's scale inside the kernels.
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

  // Keys [j0, j1) of kv head h as the decoding kernels read them (rows from `length` on are
  // never read): where they lie when one page holds the whole tile, else copied into the
  // thread's staging as they are stored. KV: float for fp32 caches, bf16 for bf16 ones; an
  // int8 cache's tile (KV = float) holds its int8 rows and their scales (QuantizedRows).
  template <class KV>
  KeyChunk<KV> tile(AlignedBuffer& staging, std::int64_t h, std::int64_t j0, std::int64_t j1) const {
    const std::int64_t P = layout->tokens, d = layout->d, dv = layout->dv, last = std::min(j1, length);
    if ((last - 1) / P == j0 / P) {
      const std::byte* page = starts[j0 / P];
      const std::int64_t slot = j0 % P;
      if (type == CacheType::int8) {
        return quantized_chunk<KV>(j0, j1, {as<std::int8_t>(page + layout->key_row(h, slot)),
                                            as<float>(page + layout->key_scale(h, slot)),
                                            as<std::int8_t>(page + layout->value_row(h, slot)),
                                            as<float>(page + layout->value_scale(h, slot))});
      }
      return KeyChunk<KV>{j0, j1, nullptr, nullptr, dv, as<KV>(page + layout->key_row(h, slot)), d,
                          as<KV>(page + layout->value_row(h, slot))};
    }
    const std::int64_t rows = last - j0, element = layout->element_bytes;
    const std::int64_t row_bytes = (d + dv) * element + (type == CacheType::int8 ? 8 : 0);
    staging.resize((rows * row_bytes + 3) / 4 + 2);
    std::byte* keys = reinterpret_cast<std::byte*>(staging.data());
    std::byte* values = keys + rows * d * element;
    std::byte* scales = keys + (rows * (d + dv) * element + 3) / 4 * 4;  // key scales, then value scales
    for (std::int64_t j = j0; j < last; ++j) {
      const std::byte* page = starts[j / P];
      const std::int64_t slot = j % P, r = j - j0;
      std::memcpy(keys + r * d * element, page + layout->key_row(h, slot), static_cast<std::size_t>(d * element));
      std::memcpy(values + r * dv * element, page + layout->value_row(h, slot), static_cast<std::size_t>(dv * element));
      if (type == CacheType::int8) {
        std::memcpy(scales + r * 4, page + layout->key_scale(h, slot), 4);
        std::memcpy(scales + (rows + r) * 4, page + layout->value_scale(h, slot), 4);
      }
    }
    if (type == CacheType::int8) {
      return quantized_chunk<KV>(j0, j1, {as<std::int8_t>(keys), as<float>(scales), as<std::int8_t>(values),
                                          as<float>(scales) + rows});
    }
    return KeyChunk<KV>{j0, j1, nullptr, nullptr, dv, as<KV>(keys), d, as<KV>(values)};
  }

  // Keys and values [j0, j1) of kv head h into rows of d and dv elements, as the fp32 or bf16
  // kernels read them (int8 times its scale).
  template <class KV>
  void copy_rows(std::int64_t h, std::int64_t j0, std::int64_t j1, KV* keys, KV* values) const {
    const std::int64_t P = layout->tokens, d = layout->d, dv = layout->dv;
    for (std::int64_t j = j0; j < j1; ++j) {
      const std::byte* page = starts[j / P];
      const std::int64_t slot = j % P, r = j - j0;
      copy_row(page + layout->key_row(h, slot), page + layout->key_scale(h, slot), d, keys + r * d);
      copy_row(page + layout->value_row(h, slot), page + layout->value_scale(h, slot), dv, values + r * dv);
    }
  }

 private:
  template <class T>
  static const T* as(const std::byte* p) {
    return reinterpret_cast<const T*>(p);
  }

  // An int8 tile: its rows and scales, in a page or in the staging.
  template <class KV>
  KeyChunk<KV> quantized_chunk(std::int64_t j0, std::int64_t j1, const QuantizedRows& rows) const {
    KeyChunk<KV> chunk{j0, j1, nullptr, nullptr, layout->dv, nullptr, layout->d, nullptr};
    chunk.quantized = rows;
    return chunk;
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
