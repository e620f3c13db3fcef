// The C allocator of the longattn program, counting: every call forwards to glibc's own and tells
// the report's AllocationCounter how many usable bytes it handed out or took back. glibc
// supports replacing malloc this way; operator new, oneDNN and oneTBB all end here.
#include <malloc.h>

#include <cerrno>
#include <cstddef>

#include "tools/report/allocation_counter.hpp"

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);

int longattn_counting_malloc_installed() { return 1; }
}

namespace {

using longattn::report::AllocationCounter;

void* counted(void* p) {
  if (p) AllocationCounter::allocated(static_cast<std::int64_t>(malloc_usable_size(p)));
  return p;
}

}  // namespace

extern "C" {

void* malloc(std::size_t size) { return counted(__libc_malloc(size)); }
void* calloc(std::size_t count, std::size_t size) { return counted(__libc_calloc(count, size)); }
void* memalign(std::size_t alignment, std::size_t size) { return counted(__libc_memalign(alignment, size)); }
void* aligned_alloc(std::size_t alignment, std::size_t size) { return memalign(alignment, size); }

void free(void* p) {
  if (!p) return;
  AllocationCounter::released(static_cast<std::int64_t>(malloc_usable_size(p)));
  __libc_free(p);
}

void* realloc(void* p, std::size_t size) {
  const std::int64_t before = p ? static_cast<std::int64_t>(malloc_usable_size(p)) : 0;
  void* q = __libc_realloc(p, size);
  if (q || size == 0) AllocationCounter::released(before);
  return q ? counted(q) : nullptr;
}

int posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = memalign(alignment, size);
  if (!p && size != 0) return ENOMEM;
  *out = p;
  return 0;
}

}
