// Decoding against a paged KvCache as a server runs it: a batch of sequences of one context
// length, one new token each, every query head against its kv head's cached keys. Timed for
// each cache type, alternating with today's dense decoding (fp32 k and v in one tensor) in the
// same rounds; the rate the cache is read at against the machine's plain read rate.
#pragma once

#include <cstdint>
#include <vector>

#include "longattn/kv_cache.hpp"
#include "longattn/options.hpp"

namespace longattn::bench {

struct DecodeBenchConfig {
  std::vector<CacheType> caches{CacheType::fp32};
  std::int64_t page_tokens = 64;
  std::vector<std::int64_t> contexts{4096, 32768, 131072};
  std::int64_t batch = 1, heads = 32, kv_heads = 8, d = 128;
  int threads = 1;
  int repeats = 20;
  Isa isa = Isa::automatic;
  QkPrecision qk_precision = QkPrecision::inputs;  // int8: int8 queries against an int8 cache's keys
};

struct DecodeCacheResult {
  CacheType type = CacheType::fp32;
  double seconds = 0;           // median of one decoding step of the whole batch
  double tokens_per_second = 0;  // batch / seconds
  std::int64_t bytes_read = 0;   // the cache's bytes of the step's sequences: keys, values, scales
  double gbps = 0;               // bytes_read / seconds
  std::int64_t bytes_per_token = 0;  // of one layer's cache
  double append_microseconds = 0;    // one token appended to one sequence (median)
  bool qk_int8 = false;              // q·k ran on int8 (AttentionStats)
};

struct DecodeContextResult {
  std::int64_t context = 0;
  double dense_seconds = 0;  // today's decoding over dense fp32 tensors, in the same rounds
  std::vector<DecodeCacheResult> caches;
};

struct DecodeBenchResult {
  DecodeBenchConfig config;
  Isa isa = Isa::automatic;
  double read_gbps = 0;  // a plain read loop over 1 GiB on the same threads (best of 5)
  std::vector<DecodeContextResult> contexts;
};

DecodeBenchResult run_decode_bench(const DecodeBenchConfig& config);

}  // namespace longattn::bench
