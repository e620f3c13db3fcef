// What an attention call computes (DESIGN.md §1) and how it may run.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "longattn/export.hpp"
#include "longattn/positional.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn {

// Instruction-set path of the micro-kernels. `automatic` picks the best the CPU runs, unless
// the environment variable LONGATTN_ISA=avx512|avx2|scalar forces one.
enum class Isa { automatic, avx512, avx2, scalar };

LONGATTN_API std::string to_string(Isa isa);
LONGATTN_API Isa parse_isa(const std::string& name);  // throws Error on an unknown name

// How attention multiplies q, k and v given in bf16 (DESIGN.md §3).
// native   bf16 pairs multiplied by the CPU's bf16 dot product (AVX512-BF16 vdpbf16ps) and
//          summed in fp32, the probabilities rounded to bf16 for P·V (RoPE: q and k rotated
//          in fp32, then rounded to bf16): about twice the fp32 rate, within the bf16
//          tolerance (2e-2). Where the CPU has no such instruction, or for what it does not
//          cover (additive scores, a few queries per kv head), as widened.
// widened  every input widened to fp32 (exact) and computed as fp32 inputs are.
// fp32 q against bf16 k and v is always widened.
enum class Bf16Products { native, widened };

LONGATTN_API std::string to_string(Bf16Products products);
LONGATTN_API Bf16Products parse_bf16_products(const std::string& name);  // throws Error on an unknown name

// How attention computes the scores q·k of softmax attention (DESIGN.md §3):
// inputs  in the inputs' own precision (fp32, or bf16 as Bf16Products says).
// int8    after SageAttention (Zhang et al., 2024): the mean key of each (batch, kv head) is
//         taken from every key (softmax does not change under a constant per row; lse gets
//         it back), q and k are quantized to int8 with an fp32 scale per row (symmetric),
//         and q·k is summed in int32 by AVX512-VNNI (vpdpbusd). P·V runs on bf16 pairs
//         (vdpbf16ps) where the CPU has AVX512-BF16 and bf16_products is native, in fp32
//         otherwise. About 2e-2 relative error (README "int8 scores"); an Error where the
//         CPU or the isa path has no VNNI, and with soft-capping, additive scores or another
//         normalizer. A few queries per kv head (decoding) read keys in place: against an
//         int8 KvCache's rows (cached_attention) their queries are quantized per row and q·k
//         summed by vpdpbusd too; against other keys, as inputs.
enum class QkPrecision { inputs, int8 };

LONGATTN_API std::string to_string(QkPrecision precision);
LONGATTN_API QkPrecision parse_qk_precision(const std::string& name);  // throws Error on an unknown name

// How scores become weights (DESIGN.md §1):
// softmax  o_i = Σ_j softmax_j(s_ij) v_j                 (streaming, with a running max)
// sigmoid  o_i = Σ_j sigmoid(s_ij + b) v_j, b = sigmoid_bias or -log(Nk)
// relu     o_i = Σ_j relu(s_ij) v_j / Nk
// linear   o_i = φ(q_i)ᵀ S / (φ(q_i)ᵀ z), S = Σ_j φ(k_j) v_jᵀ, z = Σ_j φ(k_j), φ = elu + 1
//          (Katharopoulos et al.; no scale; O(n·D·Dv); full or causal windows only)
enum class Normalizer { softmax, sigmoid, relu, linear };

LONGATTN_API std::string to_string(Normalizer normalizer);
LONGATTN_API Normalizer parse_normalizer(const std::string& name);  // throws Error on an unknown name

// Keys visible to a query at aligned position p: p - left <= j <= p + right; -1 = unbounded.
struct Window {
  std::int64_t left = -1;
  std::int64_t right = -1;

  static constexpr Window full() { return {-1, -1}; }
  static constexpr Window causal() { return {-1, 0}; }
  bool is_full() const { return left < 0 && right < 0; }
  bool operator==(const Window&) const = default;
};

// Where q and k sit in a longer sequence: query i at position query_start + i, key j at
// key_start + j. Windows, RoPE and the position biases see these positions (only their
// difference enters a score); key_lengths, the mask and block layouts index the tensors.
// Unset query_start: key_start + Nk - Nq, the bottom-right alignment (the last query sits at
// the last key). A slice of a longer sequence (a rank's block in ring attention, a chunk of
// prefill against earlier keys) sets both.
struct Positions {
  std::optional<std::int64_t> query_start;
  std::int64_t key_start = 0;

  // Position of query 0 minus that of key 0.
  std::int64_t query_offset(std::int64_t nq, std::int64_t nk) const {
    return query_start ? *query_start - key_start : nk - nq;
  }
};

// Structured sparsity: the score matrix cut into block_q × block_k tiles, of which only the
// listed (query block, key block) pairs are visible. block_q = 0 means no layout.
struct BlockSparseLayout {
  std::int64_t block_q = 0;
  std::int64_t block_k = 0;
  std::span<const std::array<std::int64_t, 2>> visible;

  bool enabled() const { return block_q > 0; }
};

// Additive (Bahdanau) scores s_ij = wᵀ tanh(Wq q_i + Wk k_j), used in place of scale · q_i·k_j
// (no scale) with any normalizer but linear. Wq and Wk are [Da, D] row-major, w has Da
// entries. The slow path it is: O(n²·Da) tanh evaluations.
struct AdditiveScoring {
  TensorView<const float, 2> wq, wk;
  std::span<const float> w;

  bool enabled() const { return !w.empty(); }
};

struct AttentionOptions {
  // Multiplies q·k; 1/sqrt(D) when unset.
  std::optional<float> scale;
  Window window = Window::full();
  Normalizer normalizer = Normalizer::softmax;
  std::optional<float> sigmoid_bias;  // -log(Nk) when unset

  // Soft-capping (Gemma 2): the scaled score s becomes softcap · tanh(s / softcap) before
  // position biases and the score bias are added and masks applied. Unset: none.
  std::optional<float> softcap;
  // Attention sinks (gpt-oss): a logit per query head [Hq] that joins every row's softmax
  // denominator and carries no value, lse = log(e^sink + Σ e^s); a row that sees no key
  // outputs zeros with lse = sink. Softmax only. Empty = none.
  std::span<const float> sinks;
  // Sink tokens (StreamingLLM): keys j < sink_keys are visible whatever the window's left
  // edge says (its right edge, key lengths and masks still apply).
  std::int64_t sink_keys = 0;
  // Packed sequences (B = 1): sequence s owns query rows cu_seqlens_q[s] .. cu_seqlens_q[s+1]
  // and key rows cu_seqlens_k[s] .. cu_seqlens_k[s+1], sees its own keys alone, and every
  // rule (window, alignment, RoPE and ALiBi positions, sink keys) uses positions local to it.
  // The mask and score bias index the packed tensors. S + 1 entries each, from 0 to Nq and
  // Nk, non-decreasing; empty = one sequence.
  std::span<const std::int64_t> cu_seqlens_q, cu_seqlens_k;

  // Further visibility rules, all combined with the window (a key is visible when every rule
  // allows it). They reference caller memory, which must outlive the call.
  // Key padding: keys j >= key_lengths[b] of batch b are hidden (length B, or empty).
  std::span<const std::int64_t> key_lengths;
  // Explicit boolean mask [Nq, Nk], nonzero = visible (e.g. a graph's adjacency); shared by
  // every batch and head. Empty view = no mask.
  TensorView<const std::uint8_t, 2> mask;
  BlockSparseLayout block_sparse;
  AdditiveScoring additive;

  // The tensors' positions in the sequence; by default the bottom-right alignment.
  Positions positions;

  // Position terms computed inside the kernel (longattn/positional.hpp), with any normalizer
  // but linear. RoPE rotates q and k by their positions (D even): q at i + Nk - Nq and k at j
  // with the default positions.
  Rope rope;
  // ALiBi: bias_ij = -m_h · |pos_i - j| with the slopes of Hq heads, added to the scaled score.
  bool alibi = false;
  // Relative position bias [Hq, 2K+1]: bias_ij = table[h][clip(j - pos_i, -K, K) + K].
  // Empty view = none.
  TensorView<const float, 2> relative_bias;
  // Additive score bias [B, Hq, Nq, Nk] added to each scaled score (PyTorch's float
  // attn_mask): a stride of 0 shares a dimension, so one [Nq, Nk] matrix can serve every
  // batch and head. -inf gives a key weight 0, as in PyTorch: arithmetic, not a rule, so a
  // NaN in that key's value still reaches the row (the mask keeps it out). Not with linear
  // attention. Empty view = none.
  TensorView<const float, 4> score_bias;

  Isa isa = Isa::automatic;
  Bf16Products bf16_products = Bf16Products::native;
  QkPrecision qk_precision = QkPrecision::inputs;
  // Worker threads; 0 uses every core TBB may use. Results are bit-identical for any count.
  int threads = 0;
};

// What a call did: the FLOPs of DESIGN.md §4 and the memory the engine needed beyond the
// caller's tensors.
struct AttentionStats {
  double flops = 0;            // 2·(D + Dv) per visible (query, key) pair, all heads
  std::int64_t visible_pairs = 0;  // summed over batch and query heads
  // (query, key) scores the kernels computed, masked ones included: visible_pairs / this is
  // how much of the work was useful (tiles at a window's edge, the causal diagonal).
  std::int64_t computed_pairs = 0;
  std::int64_t scratch_bytes = 0;
  Isa isa = Isa::automatic;    // the path that ran
  bool bf16_products = false;  // whether bf16 pairs were multiplied natively (Bf16Products)
  bool qk_int8 = false;        // whether q·k ran on int8 (QkPrecision)
};

}  // namespace longattn
