// One tester object for the attention kernel: builder-style parameters, so each case of the
// contract is one line. check() runs the case (check/attention_case.hpp) on every ISA path
// the CPU has with 1 and 2 threads, comparing each with the fp64 reference and requiring
// bit-identical results across thread counts, and fails the test with each failure found.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "check/attention_case.hpp"

namespace longattn::testing {

using check::Layout;
using check::runnable_isas;

// check::compare as a test condition: prints the failure when there is one.
bool within_tolerance(const std::vector<float>& actual, const std::vector<double>& expected,
                      double max_abs_score, double max_abs_value, double rel = 1e-5);

class AttentionTester {
 public:
  AttentionTester& batch(std::int64_t b) { p().batch = b; return *this; }
  AttentionTester& heads(std::int64_t hq, std::int64_t hkv) { p().q_heads = hq; p().kv_heads = hkv; return *this; }
  AttentionTester& heads(std::int64_t h) { return heads(h, h); }
  AttentionTester& tokens(std::int64_t nq, std::int64_t nk) { p().nq = nq; p().nk = nk; return *this; }
  AttentionTester& n(std::int64_t n) { return tokens(n, n); }
  AttentionTester& dims(std::int64_t d, std::int64_t dv) { p().d = d; p().dv = dv; return *this; }
  AttentionTester& d(std::int64_t d) { return dims(d, d); }
  AttentionTester& window(std::int64_t left, std::int64_t right) { p().window_left = left; p().window_right = right; return *this; }
  AttentionTester& causal() { return window(-1, 0); }
  // Query i at position query_start + i, key j at key_start + j (AttentionOptions::positions).
  AttentionTester& positions(std::int64_t query_start, std::int64_t key_start) {
    p().query_start = query_start; p().key_start = key_start; return *this;
  }
  AttentionTester& scale(double s) { p().scale = s; return *this; }
  AttentionTester& layout(Layout l) { c_.layout = l; return *this; }
  AttentionTester& value_range(float magnitude) { c_.magnitude = magnitude; return *this; }
  AttentionTester& seed(unsigned s) { c_.seed = s; return *this; }
  AttentionTester& normalizer(const std::string& name) { p().normalizer = name; return *this; }
  AttentionTester& sigmoid_bias(double b) { p().sigmoid_bias = b; return *this; }
  // Additive (Bahdanau) scores with random Wq, Wk [da, D] and w [da].
  AttentionTester& additive(std::int64_t da) { c_.additive_da = da; return *this; }
  // RoPE with "half" or "interleaved" pairs.
  AttentionTester& rope(const std::string& pairing, double base = 10000) { p().rope = pairing; p().rope_base = base; return *this; }
  AttentionTester& alibi() { p().alibi = true; return *this; }
  // A random relative position bias table [Hq, 2K+1].
  AttentionTester& relative_bias(std::int64_t clip) { c_.relative_clip = clip; return *this; }
  // A random score bias with `dims` dimensions of its own (2, 3 or 4; the rest stride 0),
  // entries -inf with chance `hidden`.
  AttentionTester& score_bias(int dims, double hidden = 0) { c_.bias_dims = dims; c_.bias_hidden = hidden; return *this; }
  AttentionTester& softcap(double cap) { p().softcap = cap; return *this; }
  AttentionTester& sinks() { c_.sinks = true; return *this; }  // random sink logits, one per query head
  AttentionTester& sink_keys(std::int64_t n) { p().sink_keys = n; return *this; }
  // Packed sequences of these {query, key} lengths (batch 1; q and k tokens their sums).
  AttentionTester& sequences(const std::vector<std::array<std::int64_t, 2>>& lengths) {
    p().batch = 1;
    p().cu_seqlens_q = {0}, p().cu_seqlens_k = {0};
    for (const auto& [nq, nk] : lengths) {
      p().cu_seqlens_q.push_back(p().cu_seqlens_q.back() + nq);
      p().cu_seqlens_k.push_back(p().cu_seqlens_k.back() + nk);
    }
    return tokens(p().cu_seqlens_q.back(), p().cu_seqlens_k.back());
  }
  // Scores whose row max keeps growing (per_key > 0) or is set by the first keys (< 0):
  // AttentionCase::drift.
  AttentionTester& score_drift(float per_key) { c_.drift = per_key; return *this; }
  // The value tensor v alone times `scale` (value_range sets the spread of q, k and v
  // alike): outputs near the fp32 limit when it is large.
  AttentionTester& value_scale(float scale) { c_.value_scale = scale; return *this; }
  // Runs through the engine with this packed-K/V budget (white box: forces key chunking).
  AttentionTester& packed_budget(std::int64_t bytes) { c_.packed_budget = bytes; return *this; }
  // ... and with key chunks of this many bytes per head (white box: several heads' chunks at once).
  AttentionTester& chunk_bytes(std::int64_t bytes) { c_.chunk_bytes = bytes; return *this; }
  AttentionTester& key_lengths(std::vector<std::int64_t> lengths) { p().key_lengths = std::move(lengths); return *this; }
  // A random [Nq, Nk] mask, each entry visible with probability `density`.
  AttentionTester& random_mask(double density) { c_.mask_density = density; return *this; }
  // A random block-sparse layout of block_q × block_k tiles, each visible with `density`.
  AttentionTester& random_blocks(std::int64_t block_q, std::int64_t block_k, double density) {
    p().block_q = block_q; p().block_k = block_k; c_.block_density = density; return *this;
  }
  // q, k and v given as bf16 (the random values rounded to bf16; the reference gets the same
  // rounded values): the engine widens them and must meet the fp32 tolerance.
  AttentionTester& bf16_inputs() { c_.bf16 = check::Bf16Inputs::all; return *this; }
  // int8 scores (QkPrecision::int8) on the paths that have them, within their tolerance.
  AttentionTester& qk_int8() { c_.qk_int8 = true; return *this; }
  // fp32 q against bf16 k and v (a bf16 key-value cache), checked the same way.
  AttentionTester& bf16_keys_values() { c_.bf16 = check::Bf16Inputs::keys_values; return *this; }
  // Element [b, h, n, c] of q, k or v set to `value` (a NaN, ±inf) once the random inputs
  // are drawn (and rounded to bf16): the reference's IEEE arithmetic says what follows.
  AttentionTester& poison(char tensor, std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t c, float value) {
    c_.poisons.push_back({tensor, b, h, n, c, value});
    return *this;
  }

  void check() const;

 private:
  reference::Problem& p() { return c_.problem; }
  check::AttentionCase c_;
};

}  // namespace longattn::testing
