// The multi-head self-attention layer (DESIGN.md §1): X → Q, K, V through learned
// projections, attention per head, heads joined through Wo. Weights in PyTorch layout, so
// those of nn.MultiheadAttention / nn.Linear load as they are.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "longattn/attention.hpp"
#include "longattn/export.hpp"
#include "longattn/kv_cache.hpp"
#include "longattn/options.hpp"
#include "longattn/plan.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn {

// A position table added to X before the projections.
enum class AbsolutePositions {
  none,
  sinusoidal,  // Vaswani et al.: sinusoidal_table(N, E), any N
  learned,     // the caller's table [max_len, E]; N > max_len is an error
};

struct MultiHeadConfig {
  std::int64_t embed_dim = 0;  // E
  std::int64_t heads = 0;      // Hq
  std::int64_t kv_heads = 0;   // Hkv (grouped-query / multi-query attention); 0 = heads
  std::int64_t head_dim = 0;   // D; 0 = E / heads (then heads must divide E)
  AbsolutePositions positions = AbsolutePositions::none;
  // How each head attends: window, RoPE, ALiBi, relative bias, normalizer, scale, isa and
  // threads (the projections use the same thread count). Per-call inputs (key_lengths, mask,
  // block_sparse) are not part of a layer's description.
  AttentionOptions attention;
  // The layer's arithmetic. bf16: the weights kept in bf16, each row of x (+ positions)
  // rounded to bf16 as it is projected, Q, K and V made by oneDNN's bf16 matmuls (fp32 sums)
  // and kept in bf16, attention on them (attention()'s bf16 path), its output rounded to
  // bf16 for Wo; y in fp32. Half the weights' and activations' bytes, within the bf16
  // tolerance. Where the kernels run without AVX-512 (the CPU's, or attention.isa's choice),
  // which oneDNN's bf16 matmuls need, the layer runs in fp32; MultiHeadStats::precision says
  // which ran.
  DType precision = DType::f32;
};

// Weights as PyTorch stores them: nn.Linear's [out, in], y = x Wᵀ + b. Either wq, wk, wv or
// nn.MultiheadAttention's packed in_proj_weight [3E, E] (rows: q, then k, then v; needs
// Hkv = Hq and Hq·D = E). Biases are optional (empty = zero). Copied by the layer: the
// caller's arrays need not outlive the constructor. NaN or inf in weights is not rejected:
// it propagates to the outputs it touches, as in PyTorch.
struct MultiHeadWeights {
  TensorView<const float, 2> wq, wk, wv;  // [Hq·D, E], [Hkv·D, E], [Hkv·D, E]
  TensorView<const float, 2> in_proj_weight;  // [3E, E], in place of wq, wk, wv
  TensorView<const float, 2> wo;          // [E, Hq·D]
  std::span<const float> bq, bk, bv;      // [Hq·D], [Hkv·D], [Hkv·D]
  std::span<const float> in_proj_bias;    // [3E], with in_proj_weight
  std::span<const float> bo;              // [E]
  TensorView<const float, 2> position_table;  // [max_len, E] for AbsolutePositions::learned
};

// Where one forward call spent its time.
struct MultiHeadStats {
  DType precision = DType::f32;   // of the projections and attention (MultiHeadConfig::precision)
  double projection_seconds = 0;  // X (+ positions) → Q, K, V
  double attention_seconds = 0;   // the kernel
  double output_seconds = 0;      // O → Y
  double projection_flops = 0;    // 2·B·N·E·(Hq + 2·Hkv)·D + 2·B·N·Hq·D·E
  AttentionStats attention;       // the kernel's own figures (its scratch included)
  std::int64_t scratch_bytes = 0;  // the layer's buffers (Q, K, V and blocks), kernel's excluded
};

// The rows x holds of a longer sequence, and who attends over them: the hook through which a
// layer runs split across processes (ring_forward, longattn/ring.hpp). Empty members: x is
// the whole sequence and the layer's own kernel attends.
struct SequenceRows {
  // {global start, length} of each run of x's rows, in order: absolute positions and RoPE
  // use these global positions.
  std::span<const std::array<std::int64_t, 2>> segments;
  // Attention on Q, K and V of x's rows (RoPE already applied), writing O.
  std::function<AttentionStats(HeadsView<const float> q, HeadsView<const float> k, HeadsView<const float> v,
                               HeadsView<float> out, const AttentionOptions& options)>
      attend;
  // Told what is wrong with this call's arguments (empty: nothing) before anything is written,
  // so that every process of a split layer can agree to go on or throw.
  std::function<void(const std::string& problem)> agree;
};

class LONGATTN_API MultiHeadSelfAttention {
 public:
  // Validates the description and the weights, copies the weights and prepares the oneDNN
  // projections. Throws Error naming the argument (wrong E, H not dividing E, Hkv not
  // dividing Hq, a weight or table of the wrong shape, odd D with RoPE, ...).
  MultiHeadSelfAttention(const MultiHeadConfig& config, const MultiHeadWeights& weights);
  ~MultiHeadSelfAttention();
  MultiHeadSelfAttention(MultiHeadSelfAttention&&) noexcept;
  MultiHeadSelfAttention& operator=(MultiHeadSelfAttention&&) noexcept;

  // y [B, N, E] = the layer applied to x [B, N, E] (features contiguous; y must not overlap
  // x). Validates before writing anything. Any number of threads may call forward on one
  // layer at once: each call borrows buffers of its own (kept by the layer for later calls)
  // and runs the shared oneDNN projections with its own scratchpad, and gets the bits it
  // gets alone.
  MultiHeadStats forward(TensorView<const float, 3> x, TensorView<float, 3> y) const;
  // The same on rows of a longer sequence (see SequenceRows).
  MultiHeadStats forward(TensorView<const float, 3> x, TensorView<float, 3> y, const SequenceRows& rows) const;

  // A step of a causal layer that serves from a KvCache: x [S, T, E] are the next T tokens of
  // each sequence of `sequences` (S of them, of any lengths). Their keys and values are
  // appended to the cache at `layer`, at positions length … length + T - 1 of each sequence,
  // and y [S, T, E] is the layer's output for them: each token attends over its sequence's
  // cached tokens and the new ones up to itself (T = 1 decodes; more is a chunk of prefill).
  // The cache must hold Hkv heads of D features for keys and values, and turn keys with the
  // layer's RoPE (KvCacheConfig::rope = config.attention.rope); the layer's window must see no
  // key to the right of a query (causal, or a window (L, 0)). Absolute positions are added at
  // each token's position in its sequence. Everything is checked before the cache or y is
  // written; on an Error both are as they were.
  MultiHeadStats decode(TensorView<const float, 3> x, TensorView<float, 3> y, KvCache& cache, std::int64_t layer,
                        std::span<const SequenceId> sequences) const;

  const MultiHeadConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longattn
