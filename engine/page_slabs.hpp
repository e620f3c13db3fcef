// Where a KvCache's pages live: slabs of 2 MiB huge pages, each cut into whole pages. A
// decoding step reads every page of a sequence once, a few hundred KiB each; on 4 KiB pages
// each one costs its own TLB walks, and a paged fp32 cache read 0.70-0.83x as fast as the
// same keys in one tensor, level with it on huge pages (bench/TUNING.md "KvCache pages").
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/aligned_buffer.hpp"

namespace longattn::engine {

class PageSlabs {
 public:
  static constexpr std::int64_t kHugePage = std::int64_t{2} << 20;
  // A slab's pages: as many as fill 16 MiB (one page at least), so that pages larger than a
  // huge page waste little of the slab's last huge page.
  static constexpr std::int64_t kSlabTarget = std::int64_t{16} << 20;

  PageSlabs() = default;
  explicit PageSlabs(std::int64_t page_bytes)
      : page_bytes_(page_bytes), pages_per_slab_(std::max<std::int64_t>(1, kSlabTarget / page_bytes)) {}

  // A free page's memory and the slab it lies in: from a slab with room, or a new slab.
  // Throws std::bad_alloc when the memory is not there.
  std::byte* allocate(std::int32_t& slab) {
    const auto first = [&](auto usable) {  // the first slab usable(s) accepts, or -1
      for (std::size_t i = 0; i < slabs_.size(); ++i) {
        if (usable(slabs_[i])) return static_cast<std::int32_t>(i);
      }
      return std::int32_t{-1};
    };
    slab = first([](const Slab& s) { return s.memory.bytes() > 0 && !s.free_slots.empty(); });
    if (slab < 0) slab = first([](const Slab& s) { return s.memory.bytes() == 0; });  // one freed earlier
    if (slab < 0) {
      slabs_.emplace_back();
      for (std::int64_t i = pages_per_slab_ - 1; i >= 0; --i) {
        slabs_.back().free_slots.push_back(static_cast<std::int32_t>(i));
      }
      slab = static_cast<std::int32_t>(slabs_.size()) - 1;
    }
    Slab& s = slabs_[slab];
    if (s.memory.bytes() == 0) s.memory.resize(slab_bytes() / static_cast<std::int64_t>(sizeof(float)), true);
    const std::int32_t slot = s.free_slots.back();
    s.free_slots.pop_back();
    return base(s) + slot * page_bytes_;
  }

  // The page's slot back to its slab; a slab left with no page in use gives its memory back.
  void release(std::int32_t slab, const std::byte* page) {
    Slab& s = slabs_[slab];
    s.free_slots.push_back(static_cast<std::int32_t>((page - base(s)) / page_bytes_));
    if (static_cast<std::int64_t>(s.free_slots.size()) == pages_per_slab_) s.memory = AlignedBuffer{};
  }

  // Bytes the slabs hold, pages in use or not.
  std::int64_t reserved_bytes() const {
    std::int64_t bytes = 0;
    for (const Slab& s : slabs_) bytes += s.memory.bytes();
    return bytes;
  }

 private:
  struct Slab {
    AlignedBuffer memory;  // empty once every page is free again (made anew when needed)
    std::vector<std::int32_t> free_slots;
  };

  std::int64_t slab_bytes() const {
    return (pages_per_slab_ * page_bytes_ + kHugePage - 1) / kHugePage * kHugePage;
  }
  static std::byte* base(Slab& s) { return reinterpret_cast<std::byte*>(s.memory.data()); }

  std::int64_t page_bytes_ = 1, pages_per_slab_ = 1;
  std::vector<Slab> slabs_;
};

}  // namespace longattn::engine
