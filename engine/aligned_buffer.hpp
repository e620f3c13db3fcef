// A fixed-size, cache-line aligned float buffer: the engine's scratch memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

namespace longattn::engine {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::int64_t floats) { resize(floats); }

  // Contents are unspecified after a resize that grows the buffer.
  void resize(std::int64_t floats) {
    if (floats <= capacity_) return;
    // 64-byte lines; the size is rounded up as aligned_alloc requires.
    const std::size_t bytes = (static_cast<std::size_t>(floats) * sizeof(float) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (p == nullptr) throw std::bad_alloc();
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

}  // namespace longattn::engine
