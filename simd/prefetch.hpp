// Data a thread will read soon, fetched towards L2 a few cache lines at a time between the
// micro-kernels' register blocks, so that the wait overlaps with arithmetic.
//
// A (256, 256) window reads 72 KiB of new q, k and v rows per query block of 96 rows from
// memory, and the copy of q and the packing of k stalled on them. Prefetching all of it at
// once only moves the stall to the prefetches (each holds one of a core's few line-fill
// buffers until its line arrives); spread over the ~300 register blocks of a query block,
// the lines arrive while the FMAs run (bench/TUNING.md "Prefetching").
#pragma once

#include <cstdint>

namespace longattn::simd {

class PrefetchQueue {
 public:
  static constexpr std::int64_t kLine = 64;
  static constexpr int kMaxSets = 8;
  // Lines issued after each register block (a 6 × 4 block over D = 64 is ~1500 FMAs): a
  // query block of a (256, 256) window runs ~300 blocks and queues ~1150 lines for the next
  // one (bench/TUNING.md "Prefetch lines per register block").
  static constexpr int kLinesPerBlock = 8;

  PrefetchQueue() = default;
  // A queue for work that reads more per register block: linear attention reads a new key
  // and value row per 256 FMAs.
  explicit PrefetchQueue(int lines_per_block) : lines_per_block_(lines_per_block) {}

  void clear() { sets_ = next_ = 0; }
  bool empty() const { return next_ == sets_; }  // every queued line issued

  // Queues the lines of `rows` rows of `bytes` bytes each, `stride_bytes` apart (ignored
  // when the queue is full).
  void add_rows(const void* first, std::int64_t rows, std::int64_t bytes, std::int64_t stride_bytes) {
    if (sets_ == kMaxSets || rows <= 0 || bytes <= 0) return;
    RowSet& set = set_[sets_++];
    set.row = static_cast<const char*>(first);
    set.rows = rows;
    set.bytes = bytes;
    set.stride = stride_bytes;
    set.offset = 0;
  }

  // Issues up to `lines` of the queued lines, in order. Always inlined: GCC deletes calls to
  // functions whose only effect is a prefetch (a hint it finds free of side effects).
  [[gnu::always_inline]] void issue_block() { issue(lines_per_block_); }
  [[gnu::always_inline]] void issue(int lines) {
    while (lines > 0 && next_ < sets_) {
      RowSet& set = set_[next_];
      __builtin_prefetch(set.row + set.offset, 0, 2);  // to L2; a line no other core holds comes exclusive
      --lines;
      set.offset += kLine;
      if (set.offset >= set.bytes) {
        set.offset = 0;
        set.row += set.stride;
        if (--set.rows == 0) ++next_;
      }
    }
  }

 private:
  struct RowSet {
    const char* row;
    std::int64_t rows, bytes, stride, offset;
  };
  RowSet set_[kMaxSets];
  int sets_ = 0, next_ = 0;
  int lines_per_block_ = kLinesPerBlock;
};

}  // namespace longattn::simd
