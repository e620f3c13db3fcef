// The multi-head layer measured as its users run it, and against its parts measured alone:
// the projection GEMMs (oneDNN matmul over all rows at once) and the attention kernel on
// contiguous q, k, v. The layer should cost no more than the sum of its parts.
#pragma once

#include <cstdint>

#include "longattn/options.hpp"
#include "longattn/plan.hpp"

namespace longattn::bench {

struct LayerBenchConfig {
  std::int64_t n = 16384, e = 512, heads = 8, kv_heads = 0;  // kv_heads 0 = heads; D = E / heads
  std::int64_t batch = 1;
  AttentionOptions attention;  // window, RoPE, ALiBi, isa; threads set from `threads`
  DType precision = DType::f32;  // the layer's (MultiHeadConfig::precision); the parts alone run fp32
  int threads = 1;
  int repeats = 3;
};

struct LayerBenchResult {
  LayerBenchConfig config;
  Isa isa = Isa::automatic;
  DType precision = DType::f32;  // what the layer ran in
  bool qk_int8 = false;          // its attention's q·k ran on int8 (AttentionStats)
  double attention_flops = 0, projection_flops = 0;
  // Medians over rounds that run the layer, the GEMMs alone and the kernel alone in turn.
  double layer_seconds = 0, layer_projection_seconds = 0, layer_attention_seconds = 0, layer_output_seconds = 0;
  double gemm_alone_seconds = 0, kernel_alone_seconds = 0;
  // With RoPE or ALiBi: the same layer without them, in the same rounds (0 otherwise).
  double plain_layer_seconds = 0;
  // Memory after one forward: the process's peak RSS, and what it holds at least.
  std::int64_t base_rss_bytes = 0;    // resident before any tensor was made
  std::int64_t peak_rss_bytes = 0;
  std::int64_t io_bytes = 0;          // x and y
  std::int64_t weight_bytes = 0;      // the caller's weights and the layer's copy
  std::int64_t qkv_bytes = 0;         // the layer's Q | K | V buffer
  std::int64_t kernel_scratch_bytes = 0;
  double peak_gflops = 0;
};

LayerBenchResult run_layer_bench(const LayerBenchConfig& config);

}  // namespace longattn::bench
