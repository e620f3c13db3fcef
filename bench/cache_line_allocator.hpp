// Allocates on 64-byte cache lines, as ML frameworks allocate tensors (PyTorch's CPU allocator
// aligns to 64): a vector load split across two lines costs two, and the engine reads value
// rows in place only when they are aligned. Used by the benchmarks and the tests alike.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace longattn::bench {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const { return true; }
};

// A float tensor's storage.
using Tensor = std::vector<float, CacheLineAllocator<float>>;

}  // namespace longattn::bench
