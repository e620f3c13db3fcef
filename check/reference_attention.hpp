// The fp64 reference: a direct transcription of DESIGN.md §1 that shares no code with the
// engine. Slow on purpose: two passes over every (query, key) pair, all in double.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace longattn::reference {

struct Problem {
  std::int64_t batch = 1, q_heads = 1, kv_heads = 1, nq = 1, nk = 1, d = 1, dv = 1;
  // Contiguous [B, H, N, D] inputs (float32 values, or the fp64 projections of a layer).
  std::vector<double> q, k, v;
  double scale = 0;  // 0: 1/sqrt(d)
  std::int64_t window_left = -1, window_right = -1;
  // Query i at position query_start + i, key j at key_start + j; unset query_start: the
  // bottom-right alignment, key_start + Nk - Nq.
  std::optional<std::int64_t> query_start;
  std::int64_t key_start = 0;
  std::vector<std::int64_t> key_lengths;  // [B], empty: all keys
  std::vector<std::uint8_t> mask;         // [Nq, Nk] row-major, empty: no mask
  std::int64_t block_q = 0, block_k = 0;  // block-sparse layout when block_q > 0
  std::vector<std::array<std::int64_t, 2>> visible_blocks;
  std::string normalizer = "softmax";  // softmax, sigmoid, relu, linear
  double sigmoid_bias = NAN;          // NaN: -log(Nk)
  // Additive scores wᵀ tanh(Wq q + Wk k) when additive_w is not empty; Wq, Wk [Da, D].
  std::vector<float> additive_wq, additive_wk, additive_w;
  // RoPE ("half" or "interleaved", empty: none) rotating q at its aligned position, k at j.
  std::string rope;
  double rope_base = 10000;
  bool alibi = false;              // bias -m_h |pos_i - j|, the paper's slopes for q_heads
  std::vector<float> relative_bias;  // [Hq, 2K+1], empty: none
  std::vector<float> score_bias;     // [B, Hq, Nq, Nk] row-major, added to every score; empty: none
  double softcap = 0;                // > 0: s = softcap · tanh(s / softcap) before the biases
  std::vector<float> sinks;          // [Hq] logits in every softmax denominator; empty: none
  std::int64_t sink_keys = 0;        // keys j < sink_keys ignore the window's left edge
  // Packed sequences (B = 1): S + 1 offsets into q's and k's tokens; empty: one sequence.
  std::vector<std::int64_t> cu_seqlens_q, cu_seqlens_k;
};

// The ALiBi slopes of Press et al. for `heads` heads, transcribed from the paper's code.
std::vector<double> alibi_slopes(std::int64_t heads);

struct Result {
  std::vector<double> out;  // [B, Hq, Nq, Dv]
  std::vector<double> lse;  // [B, Hq, Nq], -inf for a query that sees no key (softmax only)
  double max_abs_score = 0;
  std::int64_t visible_pairs = 0;  // over all batches and query heads
};

Result attention(const Problem& p);

}  // namespace longattn::reference
