// One tester object for the attention kernel: builder-style parameters, so each case of the
// contract is one line. check() runs every ISA path the CPU has with 1 and 2 threads, compares
// each with the fp64 reference, and requires bit-identical results across thread counts.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "longattn/attention.hpp"
#include "tests/reference_attention.hpp"

namespace longattn::testing {

// bhdn stores each head feature-major ([B, H, D, N]): a view whose feature stride is not 1.
enum class Layout { bhnd, bnhd, bhdn };

// Whether actual meets the tolerance of tests/golden/README.md (golden::tolerance), with
// -inf expectations met exactly; prints the error when it does not.
bool within_tolerance(const std::vector<float>& actual, const std::vector<double>& expected,
                      double max_abs_score, double max_abs_value, double rel = 1e-5);

// The ISA paths this CPU runs (the scalar one always), or those of them that
// LONGATTN_TEST_ISAS names (throws Error if it names one the CPU cannot run).
std::vector<Isa> runnable_isas();

class AttentionTester {
 public:
  AttentionTester& batch(std::int64_t b) { p_.batch = b; return *this; }
  AttentionTester& heads(std::int64_t hq, std::int64_t hkv) { p_.q_heads = hq; p_.kv_heads = hkv; return *this; }
  AttentionTester& heads(std::int64_t h) { return heads(h, h); }
  AttentionTester& tokens(std::int64_t nq, std::int64_t nk) { p_.nq = nq; p_.nk = nk; return *this; }
  AttentionTester& n(std::int64_t n) { return tokens(n, n); }
  AttentionTester& dims(std::int64_t d, std::int64_t dv) { p_.d = d; p_.dv = dv; return *this; }
  AttentionTester& d(std::int64_t d) { return dims(d, d); }
  AttentionTester& window(std::int64_t left, std::int64_t right) { p_.window_left = left; p_.window_right = right; return *this; }
  AttentionTester& causal() { return window(-1, 0); }
  AttentionTester& scale(double s) { p_.scale = s; return *this; }
  AttentionTester& layout(Layout l) { layout_ = l; return *this; }
  AttentionTester& value_range(float magnitude) { magnitude_ = magnitude; return *this; }
  AttentionTester& seed(unsigned s) { seed_ = s; return *this; }
  AttentionTester& normalizer(const std::string& name) { p_.normalizer = name; return *this; }
  AttentionTester& sigmoid_bias(double b) { p_.sigmoid_bias = b; return *this; }
  // Additive (Bahdanau) scores with random Wq, Wk [da, D] and w [da].
  AttentionTester& additive(std::int64_t da) { additive_da_ = da; return *this; }
  // RoPE with "half" or "interleaved" pairs.
  AttentionTester& rope(const std::string& pairing, double base = 10000) { p_.rope = pairing; p_.rope_base = base; return *this; }
  AttentionTester& alibi() { p_.alibi = true; return *this; }
  // A random relative position bias table [Hq, 2K+1].
  AttentionTester& relative_bias(std::int64_t clip) { relative_clip_ = clip; return *this; }
  // Scores that drift along the keys: key n gets per_key · n added to its feature 0 and every
  // query a feature 0 of 1 + |q0|, so each row's max keeps growing (per_key > 0) from tile
  // to tile and within tiles, or is set by the first keys (per_key < 0).
  AttentionTester& score_drift(float per_key) { drift_ = per_key; return *this; }
  // The value tensor v alone times `scale` (value_range sets the spread of q, k and v
  // alike): outputs near the fp32 limit when it is large.
  AttentionTester& value_scale(float scale) { value_scale_ = scale; return *this; }
  // Runs through the engine with this packed-K/V budget (white box: forces key chunking).
  AttentionTester& packed_budget(std::int64_t bytes) { budget_ = bytes; return *this; }
  // ... and with key chunks of this many bytes per head (white box: several heads' chunks at once).
  AttentionTester& chunk_bytes(std::int64_t bytes) { chunk_ = bytes; return *this; }
  AttentionTester& key_lengths(std::vector<std::int64_t> lengths) { p_.key_lengths = std::move(lengths); return *this; }
  // A random [Nq, Nk] mask, each entry visible with probability `density`.
  AttentionTester& random_mask(double density) { mask_density_ = density; return *this; }
  // A random block-sparse layout of block_q × block_k tiles, each visible with `density`.
  AttentionTester& random_blocks(std::int64_t block_q, std::int64_t block_k, double density) {
    p_.block_q = block_q; p_.block_k = block_k; block_density_ = density; return *this;
  }
  // q, k and v given as bf16 (the random values rounded to bf16; the reference gets the same
  // rounded values): the engine widens them and must meet the fp32 tolerance.
  AttentionTester& bf16_inputs() { bf16_ = Bf16::all; return *this; }
  // fp32 q against bf16 k and v (a bf16 key-value cache), checked the same way.
  AttentionTester& bf16_keys_values() { bf16_ = Bf16::keys_values; return *this; }

  void check() const;

 private:
  reference::Problem p_;
  Layout layout_ = Layout::bhnd;
  float magnitude_ = 1.0f;
  float drift_ = 0.0f;
  float value_scale_ = 1.0f;
  unsigned seed_ = 1;
  double mask_density_ = -1, block_density_ = -1;
  std::int64_t budget_ = 0, chunk_ = 0;
  std::int64_t additive_da_ = 0;
  std::int64_t relative_clip_ = -1;
  enum class Bf16 { none, all, keys_values } bf16_ = Bf16::none;
};

}  // namespace longattn::testing
