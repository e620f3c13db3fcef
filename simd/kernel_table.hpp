// The micro-kernels of one instruction-set target, as the engine sees them: plain function
// pointers over fp32 arrays, with no masks, heads or instructions in sight.
//
// Layouts the kernels agree on with the engine:
// - Key panels: keys grouped `panel_width` at a time, each panel stored [D][panel_width]
//   (feature-major), so one panel row is `panel_width / lanes` aligned vector loads.
// - Score / probability tiles: rows of `lds` floats.
// - Value rows and output accumulators: rows of `dv_padded` floats, dv_padded a multiple of
//   `lanes`, padding columns zero.
#pragma once

#include <cstdint>

#include "longattn/bf16.hpp"
#include "longattn/options.hpp"
#include "simd/prefetch.hpp"

namespace longattn::simd {

// Terms a QKᵀ tile adds to its scores beyond q·k, or applies to its probabilities; each one
// is optional (null: none).
struct ScoreTerms {
  // rows - 1 + keys floats of a term of c - r alone (a position bias): s[r][c] gains
  // diagonals[c + rows - 1 - r].
  const float* diagonals = nullptr;
  // Probabilities only: row r sees keys [row_bounds[2r], row_bounds[2r + 1]) alone (c counted
  // from the tile's first key); s[r][c] = 0 outside them, whatever the score (a window's edge,
  // the causal diagonal).
  const std::int32_t* row_bounds = nullptr;
  // > 0: each product q·k (times the pair scale) becomes softcap · tanh(q·k / softcap) before
  // the row's start value and the diagonal term join it. fp32 key panels carry the cap's
  // exponent factor kSoftcapExponent / softcap (FlashPlan::packed_key_scale): their products
  // are the exponent itself.
  float softcap = 0.0f;
};

// -2 log2 e: cap · tanh(y) is computed from 2^(-2 log2 e · y), y = score / cap.
inline constexpr float kSoftcapExponent = -2.8853900817779268f;

// The register-blocked products of a query block against a tile of packed keys and values.
// Both QKᵀ entry points compute s[r][c] = q[r] · key (first_key + c) of the key panels (plus
// the terms) for r < rows, c < keys; first_key and keys are multiples of lanes, so a panel may
// be used in part. Lines of `prefetch` are issued as they go.
struct TileKernels {
  // s[r][c] = the score; row_max[r] is raised to the largest score of row r.
  void (*qk_scores)(const float* q, std::int64_t rows, std::int64_t d, const float* key_panels,
                    std::int64_t first_key, std::int64_t keys, float* s, std::int64_t lds, ScoreTerms terms,
                    float* row_max, PrefetchQueue& prefetch);

  // s[r][c] = 2^(row_shift[r] + the score) and row_sum[r] = Σ_c s[r][c]. The scores must be
  // finite and the caller must flush denormals (simd::DenormalsFlushed): results under 2^-126
  // then come out as zeros.
  void (*qk_probabilities)(const float* q, std::int64_t rows, std::int64_t d, const float* key_panels,
                           std::int64_t first_key, std::int64_t keys, float* s, std::int64_t lds,
                           const float* row_shift, ScoreTerms terms, float* row_sum, PrefetchQueue& prefetch);

  // o[r] = o[r] · row_scale[r] + Σ_{j < keys} p[r][j] · v[j], over dv_padded columns (no
  // scaling when row_scale is null); value rows are ldv floats apart (the caller's rows, or
  // packed ones).
  void (*pv_tile)(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t keys, const float* v,
                  std::int64_t ldv, std::int64_t dv_padded, float* o, const float* row_scale,
                  PrefetchQueue& prefetch);

  // Additive scores: s[r][j] = scale · Σ_{a < da} w[a] tanh(qp[r][a] + kp[a][j]) over `panels`
  // panels of projected keys laid out like key panels; row_max raised like qk_scores'.
  void (*additive_tile)(const float* qp, std::int64_t rows, std::int64_t da, const float* key_panels,
                        std::int64_t panels, const float* w, float scale, float* s, std::int64_t lds,
                        float* row_max);
};

// The decoding regime's kernels: a few query rows against keys and values where the caller
// keeps them, each row read once, in order; fp32 rows, or bf16 widened as they are loaded.
struct RowKernels {
  // s[r][c] = scale · q[r] · key c for r < rows, c < count: q rows ldq floats apart, key rows
  // of d contiguous elements, ldk apart.
  void (*qk_rows)(const float* q, std::int64_t rows, std::int64_t ldq, std::int64_t d, const float* keys,
                  std::int64_t ldk, std::int64_t count, float scale, float* s, std::int64_t lds);
  void (*qk_rows_bf16)(const float* q, std::int64_t rows, std::int64_t ldq, std::int64_t d, const bf16* keys,
                       std::int64_t ldk, std::int64_t count, float scale, float* s, std::int64_t lds);
  // On an int8 cache's key rows, key c standing for key_scales[c] times its row:
  // s[r][c] = scale · key_scales[c] · q[r] · key c.
  void (*qk_rows_int8)(const float* q, std::int64_t rows, std::int64_t ldq, std::int64_t d, const std::int8_t* keys,
                       std::int64_t ldk, const float* key_scales, std::int64_t count, float scale, float* s,
                       std::int64_t lds);

  // o[r][c] = o[r][c] · row_scale[r] + Σ_{j < count} p[r][j] · v[j][c] for c < dv (any dv; no
  // scaling when row_scale is null): value rows of dv contiguous elements, ldv apart, at any
  // alignment; o rows ldo floats apart.
  void (*pv_rows)(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const float* v,
                  std::int64_t ldv, std::int64_t dv, float* o, std::int64_t ldo, const float* row_scale);
  void (*pv_rows_bf16)(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const bf16* v,
                       std::int64_t ldv, std::int64_t dv, float* o, std::int64_t ldo, const float* row_scale);
  // On int8 value rows, value j standing for value_scales[j] times its row.
  void (*pv_rows_int8)(const float* p, std::int64_t rows, std::int64_t ldp, std::int64_t count, const std::int8_t* v,
                       std::int64_t ldv, const float* value_scales, std::int64_t dv, float* o, std::int64_t ldo,
                       const float* row_scale);
};

// Element-wise passes over rows of scores and outputs (cols a multiple of lanes unless said).
struct ElementwiseKernels {
  // p[r][j] = 2^(s[r][j] - row_max[r]) in place for j < cols; row_sum[r] = Σ_j p[r][j]. Scores
  // of -inf become exact zeros.
  void (*exp2_rows)(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols, const float* row_max,
                    float* row_sum);

  // s[r][c] += diagonals[c + rows - 1 - r]: a term of c - r alone, such as a position bias;
  // row_max[r] is raised to the row's largest new score. diagonals holds rows - 1 + cols floats.
  void (*add_diagonal_bias)(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols,
                            const float* diagonals, float* row_max);

  // p = sigmoid(s + bias) in place; -inf gives 0.
  void (*sigmoid_rows)(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols, float bias);

  // p = max(s, 0) in place.
  void (*relu_rows)(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols);

  // s = cap · tanh(s / cap) in place (soft-capping; -inf gives -cap); row_max[r] is raised to
  // the row's largest new score.
  void (*softcap_rows)(float* s, std::int64_t rows, std::int64_t lds, std::int64_t cols, float cap, float* row_max);

  // Column sums and row dot products of rows ldx floats apart (any cols): sums[c] += Σ_r x[r][c],
  // and dots[r] += x[r] · w; linear attention's normalizers.
  void (*add_columns)(const float* x, std::int64_t rows, std::int64_t ldx, std::int64_t cols, float* sums);
  void (*add_row_dots)(const float* x, std::int64_t rows, std::int64_t ldx, std::int64_t cols, const float* w,
                       float* dots);

  // max_j x[j] for j < n (n a multiple of lanes).
  float (*max_of)(const float* x, std::int64_t n);

  // out[r][c] = acc[r][c] · row_scale[r] for r < rows, c < cols (any cols), rows lda / ldo
  // floats apart; with `streamed`, out is written past the caches where its rows are
  // vector-aligned.
  void (*scale_rows)(const float* acc, std::int64_t rows, std::int64_t lda, const float* row_scale, float* out,
                     std::int64_t ldo, std::int64_t cols, bool streamed);

  // to[i] = from[i] as fp32 for i < n (exact): bf16 inputs as the kernels read them.
  void (*widen_bf16)(const bf16* from, std::int64_t n, float* to);
  // to[i] = scale · from[i] for i < n: an int8 cache's row.
  void (*dequantize_int8)(const std::int8_t* from, std::int64_t n, float scale, float* to);

  // Whether x[r][c] is finite (no NaN, no ±inf) for r < rows, c < cols (any cols), rows ld
  // elements apart.
  bool (*all_finite)(const float* x, std::int64_t rows, std::int64_t ld, std::int64_t cols);
  bool (*all_finite_bf16)(const bf16* x, std::int64_t rows, std::int64_t ld, std::int64_t cols);

  // y[i] = 2^x[i] for i < n, the vectorized exp2 the kernels use (for its accuracy test), and
  // the coarser one the int8 scores' QKᵀ epilogue uses for probabilities rounded to bf16 next
  // (exp2_coarse_finite: 8.6e-5 relative on AVX-512, exp2's own elsewhere).
  void (*exp2)(const float* x, float* y, std::int64_t n);
  void (*exp2_coarse)(const float* x, float* y, std::int64_t n);

  // y[i] = elu(x[i]) + 1 (x + 1 above zero, e^x below: linear attention's features) for
  // i < n, in place when y = x; NaN stays NaN.
  void (*elu_plus_one)(const float* x, float* y, std::int64_t n);
};

struct PackingKernels {
  // One key panel from `count` <= panel_width keys whose d features are contiguous, rows
  // `stride` floats apart, each feature times `scale`; keys past count are zero.
  // `streamed`: written past the caches.
  void (*pack_key_panel)(const float* keys, std::int64_t stride, std::int64_t count, std::int64_t d, float scale,
                         float* panel, bool streamed);
};

// Products of bf16 pairs (AVX512-BF16 vdpbf16ps), summed in fp32: the kernels for q, k and v
// all in bf16 (DESIGN.md §3). Each 4 bytes of their operands hold a pair of bf16 along the
// depth of a product, the lower-addressed one first:
// - query rows: 2·pairs bf16 (features; an odd D padded with a zero);
// - key panels: [pairs][panel_width] pairs (key c's features 2f, 2f + 1 at [f][c]);
// - value pair rows: dv_padded pairs each, keys 2t and 2t + 1 of column c at [t][c].
struct Bf16DotKernels {
  // The TileKernels' QKᵀ entry points on pairs, the products times score_scale; q rows
  // `pairs` pairs apart. The probabilities are stored in bf16, as pv_tile reads them: row
  // r's `keys` values from the start of s + r · lds.
  void (*qk_scores)(const bf16* q, std::int64_t rows, std::int64_t pairs, const bf16* key_panels,
                    std::int64_t first_key, std::int64_t keys, float* s, std::int64_t lds, float score_scale,
                    ScoreTerms terms, float* row_max, PrefetchQueue& prefetch);
  void (*qk_probabilities)(const bf16* q, std::int64_t rows, std::int64_t pairs, const bf16* key_panels,
                           std::int64_t first_key, std::int64_t keys, float* s, std::int64_t lds, float score_scale,
                           const float* row_shift, ScoreTerms terms, float* row_sum, PrefetchQueue& prefetch);

  // pv_tile on pairs: unless p_in_bf16 (qk_probabilities stored them so), each row of p is
  // first rounded to bf16 in place (its first 2·⌈keys/2⌉ values, read in whole vectors, as
  // bf16 over the start of the row, whose fp32 values are gone); then o[r] = o[r] ·
  // row_scale[r] + Σ_{j < keys} p[r][j] · v[j] over ⌈keys / 2⌉ pair rows (a missing last key
  // must have p = 0 or a zero value row).
  void (*pv_tile)(float* p, std::int64_t rows, std::int64_t ldp, std::int64_t keys, const bf16* value_pairs,
                  std::int64_t dv_padded, float* o, const float* row_scale, bool p_in_bf16,
                  PrefetchQueue& prefetch);

  // One key panel from `count` <= panel_width keys of 2·pairs contiguous bf16, rows `stride`
  // (even) bf16 apart; keys past count are zero. `streamed`: written past the caches.
  void (*pack_key_panel)(const bf16* keys, std::int64_t stride, std::int64_t count, std::int64_t pairs,
                         bf16* panel, bool streamed);

  // ⌈count / 2⌉ value pair rows from `count` rows of dv contiguous bf16, `stride` apart;
  // columns past dv and the partner of an odd last row are zeros.
  void (*pack_value_pairs)(const bf16* v, std::int64_t stride, std::int64_t count, std::int64_t dv,
                           std::int64_t dv_padded, bf16* out);
};

// Scores from int8 quads summed in int32 (AVX512-VNNI vpdpbusd): the kernels of
// QkPrecision::int8. Each 4-byte unit of their operands holds 4 int8 along the features:
// - query rows: `quads` units (4·quads int8, zeros past D), then kInt8QueryTail units: the
//   int32 bits of -128 · the row's Σ int8, the row's factor (its scale times the score
//   scale), and one the engine keeps beside the row;
// - key panels: [quads][panel_width] units (key c's features 4f .. 4f + 3 at [f][c], each its
//   int8 value + 128, read unsigned), then kInt8PanelTail rows: the keys' fp32 scales.
// A score is the row's factor times the key's scale times q·k summed in int32.
inline constexpr std::int64_t kInt8QueryTail = 3, kInt8PanelTail = 1;

// The 4-byte units of d features as int8 quads, and of a query row with its tail.
inline constexpr std::int64_t int8_quads(std::int64_t d) { return (d + 3) / 4; }
inline constexpr std::int64_t int8_query_units(std::int64_t d) { return int8_quads(d) + kInt8QueryTail; }

struct Int8DotKernels {
  // Whether the probabilities go on to P·V in bf16 pairs (Bf16DotKernels::pv_tile over value
  // pair rows, qk_probabilities storing P in bf16 as the bf16 products do) or in fp32
  // (TileKernels::pv_tile, P in fp32).
  bool probabilities_in_bf16;

  // The TileKernels' QKᵀ entry points on quads (q rows quads + kInt8QueryTail units apart).
  void (*qk_scores)(const std::int8_t* q, std::int64_t rows, std::int64_t quads, const std::uint8_t* key_panels,
                    std::int64_t first_key, std::int64_t keys, float* s, std::int64_t lds, ScoreTerms terms,
                    float* row_max, PrefetchQueue& prefetch);
  void (*qk_probabilities)(const std::int8_t* q, std::int64_t rows, std::int64_t quads,
                           const std::uint8_t* key_panels, std::int64_t first_key, std::int64_t keys, float* s,
                           std::int64_t lds, const float* row_shift, ScoreTerms terms, float* row_sum,
                           PrefetchQueue& prefetch);

  // Symmetric quantization of `count` rows of d floats (`stride` apart), each less `mean` (d
  // floats; null: none): scales[r] = max |x| / 127 over the row x (0 for a zero row, not finite for a row
  // that is not), out[r][i] = round(x[i] / scales[r]) xor `flip` as int8 for i < d, 0 xor
  // flip up to 4·quads; out rows `ldo` bytes apart.
  void (*quantize_rows)(const float* rows, std::int64_t stride, std::int64_t count, std::int64_t d,
                        const float* mean, std::int8_t flip, std::int8_t* out, std::int64_t ldo, float* scales);

  // One key panel from `count` <= panel_width keys of d floats (`stride` apart), each less
  // `mean`; keys past count are zeros of scale 0. `streamed`: written past the caches.
  void (*pack_key_panel)(const float* keys, std::int64_t stride, std::int64_t count, std::int64_t d,
                         const float* mean, std::uint8_t* panel, bool streamed);

  // The decoding kernels' q·k on an int8 cache's key rows (RowKernels::qk_rows_int8) with
  // query rows laid out as above: s[r][c] = the row's factor · key_scales[c] · the int32 sum
  // of q[r] · key c for r < rows, c < count; key rows of d int8 (signed, read + 128 in
  // registers), ldk apart.
  void (*qk_rows)(const std::int8_t* q, std::int64_t rows, std::int64_t d, const std::int8_t* keys,
                  std::int64_t ldk, const float* key_scales, std::int64_t count, float* s, std::int64_t lds);

  // With probabilities_in_bf16: Bf16DotKernels::pack_value_pairs from fp32 rows, each value
  // rounded to bf16 (nearest even). Null otherwise.
  void (*pack_value_pairs)(const float* v, std::int64_t stride, std::int64_t count, std::int64_t dv,
                           std::int64_t dv_padded, bf16* out);
};

struct KernelTable {
  Isa isa;
  const char* name;
  int lanes;        // fp32 lanes in one vector
  int panel_width;  // keys per packed key panel

  TileKernels tile;
  RowKernels rows;
  ElementwiseKernels elementwise;
  PackingKernels packing;

  // The bf16 products, where the target and the CPU have them; null elsewhere.
  const Bf16DotKernels* bf16_dot;
  // The int8 scores where the target and the CPU have them (null elsewhere): P·V in fp32, and
  // (null without bf16_dot) in bf16.
  const Int8DotKernels* int8_dot;
  const Int8DotKernels* int8_dot_bf16;

  // Runs `iterations` rounds of independent FMAs on vector registers and returns the FLOPs
  // done: the probe for the machine's peak fp32 rate on this target.
  double (*fma_peak_probe)(std::int64_t iterations);
};

// The kernels for `requested`: the best target the CPU runs for Isa::automatic, unless
// LONGATTN_ISA names one. Throws Error when the CPU cannot run the requested target.
const KernelTable& kernels_for(Isa requested);

// Whether this CPU (and OS) can run `isa`.
bool cpu_supports(Isa isa);

// Whether this CPU runs AVX512-BF16 (vdpbf16ps, vcvtneps2bf16) beside AVX-512.
bool cpu_has_avx512_bf16();

// Whether this CPU runs AVX512-VNNI (vpdpbusd) beside AVX-512.
bool cpu_has_avx512_vnni();

}  // namespace longattn::simd
