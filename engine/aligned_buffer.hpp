// A fixed-size, cache-line aligned float buffer: the engine's scratch memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace longattn::engine {

class AlignedBuffer {
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;

 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::int64_t floats) { resize(floats); }

  // Contents are unspecified after a resize that grows the buffer. With huge_pages, a buffer
  // of 2 MiB or more is 2 MiB-aligned and advised for huge pages: fewer page faults and TLB
  // misses for scratch that is kept and reused (PooledBuffer), but a fresh one costs the
  // zeroing of whole 2 MiB pages (bench/TUNING.md "Scratch memory").
  void resize(std::int64_t floats, bool huge_pages = false) {
    if (floats <= capacity_) return;
    std::size_t bytes = static_cast<std::size_t>(floats) * sizeof(float);
    const std::size_t alignment = huge_pages && bytes >= kHugePage ? kHugePage : 64;
    bytes = (bytes + alignment - 1) / alignment * alignment;  // as aligned_alloc requires
    void* p = std::aligned_alloc(alignment, bytes);
    if (p == nullptr) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
    if (alignment == kHugePage) madvise(p, bytes, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
    data_.reset(static_cast<float*>(p));
    capacity_ = floats;
  }

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  std::int64_t bytes() const { return capacity_ * static_cast<std::int64_t>(sizeof(float)); }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> data_;
  std::int64_t capacity_ = 0;
};

// A large scratch buffer borrowed from a process-wide pool for one call and given back when
// it ends, in huge pages, so that calls in a loop reuse the pages of the last one instead of
// faulting in and zeroing fresh ones (bench/TUNING.md "Scratch memory"). The pool keeps at most kKept
// buffers (the largest), so memory held between calls stays within the engine's scratch
// budget per concurrent caller.
class PooledBuffer {
  static constexpr std::size_t kKept = 2;

 public:
  explicit PooledBuffer(std::int64_t floats) {
    {
      std::lock_guard<std::mutex> lock(pool().mutex);
      auto& kept = pool().buffers;
      for (auto it = kept.begin(); it != kept.end(); ++it) {
        if (it->bytes() >= floats * static_cast<std::int64_t>(sizeof(float))) {
          buffer_ = std::move(*it);
          kept.erase(it);
          break;
        }
      }
    }
    buffer_.resize(floats, /*huge_pages=*/true);
  }
  ~PooledBuffer() {
    if (buffer_.bytes() == 0) return;
    std::lock_guard<std::mutex> lock(pool().mutex);
    auto& kept = pool().buffers;
    if (kept.size() < kKept) {
      kept.push_back(std::move(buffer_));
      return;
    }
    auto smallest = kept.begin();
    for (auto it = kept.begin(); it != kept.end(); ++it) {
      if (it->bytes() < smallest->bytes()) smallest = it;
    }
    if (smallest->bytes() < buffer_.bytes()) *smallest = std::move(buffer_);
  }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;

  float* data() { return buffer_.data(); }
  const float* data() const { return buffer_.data(); }
  std::int64_t bytes() const { return buffer_.bytes(); }

  // Frees the buffers the pool keeps (not those borrowed now) and returns their bytes.
  static std::int64_t release_kept() {
    std::vector<AlignedBuffer> kept;
    {
      std::lock_guard<std::mutex> lock(pool().mutex);
      kept.swap(pool().buffers);
    }
    std::int64_t bytes = 0;
    for (const AlignedBuffer& buffer : kept) bytes += buffer.bytes();
    return bytes;  // freed here, outside the lock
  }

 private:
  struct Pool {
    std::mutex mutex;
    std::vector<AlignedBuffer> buffers;
  };
  static Pool& pool() {
    static Pool instance;
    return instance;
  }
  AlignedBuffer buffer_;
};

}  // namespace longattn::engine
