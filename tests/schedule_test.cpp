// Which shapes get which schedule, and why: the choice as a pure function of the shape and a
// few facts about the inputs, with the tile sizes and budgets the engine plans with.
#include <doctest/doctest.h>

#include "engine/schedule.hpp"

using longattn::engine::AttentionShape;
using longattn::engine::choose_schedule;
using longattn::engine::Schedule;
using longattn::engine::ScheduleFacts;
using longattn::engine::ScheduleKind;

namespace {

// fp32 on AVX-512 (panels of 64 keys), D = Dv = 64, every key visible, values read in place.
ScheduleFacts facts(AttentionShape shape, int threads = 2) {
  return ScheduleFacts{
      .shape = shape,
      .block_rows = 96,
      .block_keys = 256,
      .panel_width = 64,
      .key_depth = shape.d,
      .value_width = shape.dv,
      .dv_padded = shape.dv,
      .score_depth = shape.d,
      .chunk_bytes = 1 << 20,
      .packed_budget_bytes = 32 << 20,
      .widest = shape.nk,
      .threads = threads,
      .values_in_place = true,
      .rows_contiguous = true,
  };
}

AttentionShape heads(std::int64_t q_heads, std::int64_t kv_heads, std::int64_t nq, std::int64_t nk, std::int64_t d = 64) {
  return {1, q_heads, kv_heads, nq, nk, d, d};
}

}  // namespace

TEST_CASE("decoding splits a kv head's keys into L2-sized tasks that read rows in place") {
  // One query against 65536 keys: 1 MiB of keys and values per split, 2048 keys, 32 splits.
  const Schedule s = choose_schedule(facts(heads(8, 8, 1, 65536)));
  CHECK(s.kind == ScheduleKind::key_splits);
  CHECK(s.split_keys == 2048);
  CHECK(s.splits == 32);
  CHECK(s.stack_heads);
  CHECK(s.rows_in_place);
}

TEST_CASE("a group's stacked rows read in place up to 16 rows, 24 at depths 96-128") {
  CHECK(choose_schedule(facts(heads(32, 8, 4, 16384))).rows_in_place);            // 16 rows, D = 64
  CHECK_FALSE(choose_schedule(facts(heads(32, 8, 5, 16384))).rows_in_place);      // 20 rows
  CHECK(choose_schedule(facts(heads(32, 8, 6, 16384, 128))).rows_in_place);       // 24 rows, D = 128
  CHECK_FALSE(choose_schedule(facts(heads(32, 8, 7, 16384, 128))).rows_in_place); // 28 rows
  const Schedule packed = choose_schedule(facts(heads(32, 8, 8, 16384)));  // 32 rows: packed tiles, still split
  CHECK(packed.kind == ScheduleKind::key_splits);
  CHECK(packed.splits == 8);
}

TEST_CASE("heads whose scores differ (a position bias) split keys block by head") {
  ScheduleFacts f = facts(heads(8, 2, 1, 65536));
  f.heads_differ = true;
  const Schedule s = choose_schedule(f);
  CHECK(s.kind == ScheduleKind::key_splits);
  CHECK_FALSE(s.stack_heads);
  CHECK(s.rows_in_place);  // 1 row per block
}

TEST_CASE("keys that must be transformed first (RoPE) are packed per tile, never read in place") {
  ScheduleFacts f = facts(heads(8, 8, 1, 65536));
  f.keys_need_packing = true;
  CHECK(choose_schedule(f).kind == ScheduleKind::key_splits);
  CHECK_FALSE(choose_schedule(f).rows_in_place);
  // A short cache, one split: nothing to split, so not a split schedule when it packs.
  ScheduleFacts short_cache = facts(heads(8, 8, 1, 200));
  CHECK(choose_schedule(short_cache).kind == ScheduleKind::key_splits);  // in place: one split
  short_cache.keys_need_packing = true;
  CHECK(choose_schedule(short_cache).kind != ScheduleKind::key_splits);
}

TEST_CASE("the partials of all splits stay within their budget: fewer, longer splits") {
  // 4096 query heads of one query: a partial is 80 floats (64 + 2, to whole lines).
  const Schedule s = choose_schedule(facts(heads(4096, 4096, 1, 65536)));
  CHECK(s.kind == ScheduleKind::key_splits);
  CHECK(longattn::engine::split_partial_floats(1, 64) == 80);
  CHECK(s.splits * 4096 * 80 * 4 <= 16 << 20);
  CHECK(s.split_keys % 256 == 0);
  CHECK(s.splits * s.split_keys >= 65536);
}

TEST_CASE("a narrow window runs in bands") {
  ScheduleFacts f = facts(heads(8, 8, 16384, 16384));
  f.widest = 96 + 512;  // a (256, 256) window seen by a block of 96 rows
  const Schedule s = choose_schedule(f);
  CHECK(s.kind == ScheduleKind::bands);
  // 16 tasks wanted for 2 threads: 2 bands of 86 blocks each would be too long, so 32.
  CHECK(s.band_blocks == 32);
  CHECK(s.bands == 6);
}

TEST_CASE("a window seeing more than a quarter of the keys runs in chunks") {
  ScheduleFacts f = facts(heads(8, 8, 16384, 16384));
  f.widest = 16384 / 4 + 1;
  CHECK(choose_schedule(f).kind == ScheduleKind::chunks);
}

TEST_CASE("many short heads (BERT-like) run as bands, a whole head each") {
  const Schedule s = choose_schedule(facts({32, 12, 12, 128, 128, 64, 64}, 1));
  CHECK(s.kind == ScheduleKind::bands);
  CHECK(s.bands == 1);  // one band of both query blocks per head
  CHECK(s.band_blocks == 2);
  // Too few heads to give every thread 8 tasks: chunks.
  CHECK(choose_schedule(facts({1, 12, 12, 128, 128, 64, 64}, 2)).kind == ScheduleKind::chunks);
}

TEST_CASE("full attention packs L2-sized chunks of as many heads as the budget holds") {
  const Schedule s = choose_schedule(facts(heads(8, 8, 16384, 16384)));
  CHECK(s.kind == ScheduleKind::chunks);
  CHECK(s.chunk_keys == 2048);  // 1 MiB of keys and values at D = 64
  CHECK(s.chunks == 8);
  CHECK(s.heads_at_once == 8);  // every head: 8 × 2048 keys × 256 bytes is 4 MiB
  // Values packed beside the keys take the budget too.
  ScheduleFacts packed = facts(heads(8, 8, 16384, 16384));
  packed.values_in_place = false;
  CHECK(choose_schedule(packed).heads_at_once == 8);
}

TEST_CASE("a head that fits L2 whole is one chunk; a small budget takes fewer heads at once") {
  const Schedule whole = choose_schedule(facts(heads(2, 2, 1024, 1024)));
  CHECK(whole.kind == ScheduleKind::chunks);
  CHECK(whole.chunks == 1);
  CHECK(whole.chunk_keys == 1024);
  ScheduleFacts tight = facts(heads(8, 8, 1024, 1024));
  tight.packed_budget_bytes = 2 * 1024 * 64 * 4;  // two heads' keys
  CHECK(choose_schedule(tight).heads_at_once == 2);
}

TEST_CASE("the carried softmax state bounds the heads of a round at long n") {
  // n = 2^20 with 64 query heads per kv head: 2 floats per query row and head, 512 MiB per
  // kv head, so one kv head of the 4 per round.
  const Schedule s = choose_schedule(facts({4, 64, 1, 1 << 20, 1 << 20, 64, 64}));
  CHECK(s.kind == ScheduleKind::chunks);
  CHECK(s.chunks > 1);
  CHECK(s.heads_at_once == 1);
}

TEST_CASE("no query rows still get a schedule (nothing to split, nothing divided by zero)") {
  const Schedule s = choose_schedule(facts(heads(8, 8, 0, 65536)));
  CHECK(s.kind == ScheduleKind::key_splits);
  CHECK(s.splits == 32);
}

TEST_CASE("the count of threads never picks between schedules that run different tiles") {
  // 12 short heads: bands for 1 thread (8 tasks per thread), chunks for 2. With a packed
  // budget below one head's keys the chunked path cuts each head in several chunks, whose
  // tiles differ from a whole head's: chunks then for any count of threads.
  ScheduleFacts one = facts(heads(12, 12, 26, 1604), 1), two = facts(heads(12, 12, 26, 1604), 2);
  CHECK(choose_schedule(one).kind == ScheduleKind::bands);
  CHECK(choose_schedule(two).kind == ScheduleKind::chunks);
  CHECK(choose_schedule(two).chunks == 1);
  one.packed_budget_bytes = two.packed_budget_bytes = 150 << 10;
  CHECK(choose_schedule(two).chunks > 1);
  CHECK(choose_schedule(one).kind == ScheduleKind::chunks);
  // Sink keys: bands run them as a chunk before the window's, a tiling of their own.
  ScheduleFacts sinks = facts(heads(12, 12, 26, 1604), 1);
  sinks.sink_keys = true;
  CHECK(choose_schedule(sinks).kind == ScheduleKind::chunks);
}
