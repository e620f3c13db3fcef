// libFuzzer target: attention() on tiny tensors whose shapes, strides, windows, key lengths,
// masks, block layouts and options come from the fuzzer's bytes. Either the call throws
// longattn::Error before writing anything (out and lse keep their sentinel bits), or it
// returns the fp64 reference's answer within the golden tolerance. Views always lie inside
// their buffers: a view past its memory is the caller's bug, not a case.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "check/attention_case.hpp"
#include "check/reference_attention.hpp"
#include "longattn/attention.hpp"
#include "longattn/positional.hpp"

using namespace longattn;

namespace {

constexpr std::int64_t kBufferFloats = 4096;

struct Buffer {
  std::vector<float> data = std::vector<float>(kBufferFloats);
};

[[noreturn]] void bug(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "validation fuzzer: %s %s\n", what, detail.c_str());
  std::abort();
}

// A view of `shape` over `buffer` with strides from the bytes (mostly a plain layout), or
// nullopt when some element would lie outside the buffer.
template <int N>
std::optional<TensorView<float, N>> draw_view(FuzzedDataProvider& in, std::vector<float>& buffer,
                                              const std::array<std::int64_t, N>& shape) {
  std::array<std::int64_t, N> strides{};
  if (in.ConsumeBool()) {
    std::int64_t stride = 1;
    for (int i = N; i-- > 0;) strides[i] = stride, stride *= std::max<std::int64_t>(1, shape[i]);
  } else {
    for (auto& s : strides) s = in.ConsumeIntegralInRange<std::int64_t>(-3, 40);
  }
  const std::int64_t offset = in.ConsumeIntegralInRange<std::int64_t>(0, 64);
  std::int64_t lowest = offset, highest = offset;
  for (int i = 0; i < N; ++i) {
    if (shape[i] <= 0) return TensorView<float, N>{buffer.data() + offset, shape, strides};  // no element
    const std::int64_t reach = (shape[i] - 1) * strides[i];
    (reach < 0 ? lowest : highest) += reach;
  }
  if (lowest < 0 || highest >= static_cast<std::int64_t>(buffer.size())) return std::nullopt;
  return TensorView<float, N>{buffer.data() + offset, shape, strides};
}

template <int N>
TensorView<const float, N> as_const(const TensorView<float, N>& v) {
  return {v.data, v.shape, v.strides};
}

// Element [i...] of a view (all indices in range).
float at(const HeadsView<const float>& v, std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t d) {
  return v.data[b * v.strides[0] + h * v.strides[1] + n * v.strides[2] + d * v.strides[3]];
}

std::vector<double> gather(const HeadsView<const float>& v) {
  std::vector<double> out;
  for (std::int64_t b = 0; b < v.shape[0]; ++b)
    for (std::int64_t h = 0; h < v.shape[1]; ++h)
      for (std::int64_t n = 0; n < v.shape[2]; ++n)
        for (std::int64_t d = 0; d < v.shape[3]; ++d) out.push_back(at(v, b, h, n, d));
  return out;
}

// The options, some of them out of range on purpose; their tables live in `keep`.
struct DrawnOptions {
  AttentionOptions options;
  std::vector<std::int64_t> lengths;
  std::vector<std::uint8_t> mask;
  std::vector<std::array<std::int64_t, 2>> tiles;
  std::vector<float> table, wq, wk, w;
};

void draw_options(FuzzedDataProvider& in, DrawnOptions& d, std::int64_t nq, std::int64_t nk, std::int64_t hq,
                  std::int64_t dim) {
  AttentionOptions& o = d.options;
  o.threads = in.ConsumeIntegralInRange(-1, 2);
  o.isa = in.PickValueInArray({Isa::automatic, Isa::scalar});
  if (in.ConsumeBool()) o.window = {in.ConsumeIntegralInRange<std::int64_t>(-2, 10), in.ConsumeIntegralInRange<std::int64_t>(-2, 10)};
  o.normalizer = in.PickValueInArray({Normalizer::softmax, Normalizer::softmax, Normalizer::sigmoid, Normalizer::relu,
                                      Normalizer::linear});
  if (in.ConsumeBool()) o.scale = in.PickValueInArray({0.5f, 2.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                                                       std::numeric_limits<float>::infinity()});
  if (in.ConsumeBool()) o.sigmoid_bias = in.PickValueInArray({-1.0f, 0.5f, std::numeric_limits<float>::quiet_NaN()});
  if (in.ConsumeBool()) {
    d.lengths.resize(in.ConsumeIntegralInRange(0, 3));
    for (auto& l : d.lengths) l = in.ConsumeIntegralInRange<std::int64_t>(-1, nk + 1);
    o.key_lengths = d.lengths;
  }
  if (in.ConsumeBool()) {
    const std::int64_t rows = in.ConsumeBool() ? nq : in.ConsumeIntegralInRange<std::int64_t>(0, 10);
    const std::int64_t cols = in.ConsumeBool() ? nk : in.ConsumeIntegralInRange<std::int64_t>(0, 10);
    d.mask.resize(static_cast<std::size_t>(std::max<std::int64_t>(0, rows * cols)));
    for (auto& m : d.mask) m = in.ConsumeBool();
    o.mask = {d.mask.data(), {rows, cols}, {cols, 1}};
  }
  if (in.ConsumeBool()) {
    o.block_sparse.block_q = in.ConsumeIntegralInRange<std::int64_t>(-1, 5);
    o.block_sparse.block_k = in.ConsumeIntegralInRange<std::int64_t>(-1, 5);
    const int tiles = in.ConsumeIntegralInRange(0, 6);
    for (int t = 0; t < tiles; ++t) {
      d.tiles.push_back({in.ConsumeIntegralInRange<std::int64_t>(-1, 4), in.ConsumeIntegralInRange<std::int64_t>(-1, 4)});
    }
    o.block_sparse.visible = d.tiles;
  }
  if (in.ConsumeBool()) o.rope = {in.PickValueInArray({RopePairing::half, RopePairing::interleaved}),
                                  in.PickValueInArray({10000.0, -1.0, 0.0})};
  o.alibi = in.ConsumeBool();
  if (in.ConsumeBool()) {
    const std::int64_t rows = in.ConsumeBool() ? hq : in.ConsumeIntegralInRange<std::int64_t>(0, 4);
    const std::int64_t cols = in.ConsumeIntegralInRange<std::int64_t>(0, 7);
    d.table.assign(static_cast<std::size_t>(std::max<std::int64_t>(0, rows * cols)), 0.25f);
    o.relative_bias = {d.table.data(), {rows, cols}, {cols, 1}};
  }
  if (in.ConsumeBool()) {
    const std::int64_t da = in.ConsumeIntegralInRange<std::int64_t>(0, 3);
    const std::int64_t cols = in.ConsumeBool() ? dim : in.ConsumeIntegralInRange<std::int64_t>(0, 5);
    d.wq.assign(static_cast<std::size_t>(std::max<std::int64_t>(0, da * cols)), 0.3f);
    d.wk.assign(d.wq.size(), -0.2f);
    d.w.assign(static_cast<std::size_t>(da), 0.7f);
    o.additive = {{d.wq.data(), {da, cols}, {cols, 1}}, {d.wk.data(), {da, cols}, {cols, 1}}, d.w};
  }
}

// The reference's problem for the views and options that attention() accepted.
reference::Problem reference_problem(const HeadsView<const float>& q, const HeadsView<const float>& k,
                                     const HeadsView<const float>& v, const AttentionOptions& o) {
  reference::Problem p;
  p.batch = q.shape[0], p.q_heads = q.shape[1], p.kv_heads = k.shape[1], p.nq = q.shape[2], p.nk = k.shape[2];
  p.d = q.shape[3], p.dv = v.shape[3];
  p.q = gather(q), p.k = gather(k), p.v = gather(v);
  if (o.scale) p.scale = *o.scale;
  p.window_left = o.window.left, p.window_right = o.window.right;
  p.key_lengths.assign(o.key_lengths.begin(), o.key_lengths.end());
  if (!o.mask.empty()) {
    for (std::int64_t i = 0; i < p.nq; ++i)
      for (std::int64_t j = 0; j < p.nk; ++j) p.mask.push_back(o.mask.data[i * o.mask.strides[0] + j * o.mask.strides[1]]);
  }
  if (o.block_sparse.enabled()) {
    p.block_q = o.block_sparse.block_q, p.block_k = o.block_sparse.block_k;
    p.visible_blocks.assign(o.block_sparse.visible.begin(), o.block_sparse.visible.end());
  }
  p.normalizer = to_string(o.normalizer);
  if (o.sigmoid_bias) p.sigmoid_bias = *o.sigmoid_bias;
  if (o.additive.enabled()) {
    const auto& a = o.additive;
    for (std::int64_t r = 0; r < a.wq.shape[0]; ++r)
      for (std::int64_t c = 0; c < a.wq.shape[1]; ++c) {
        p.additive_wq.push_back(a.wq.data[r * a.wq.strides[0] + c * a.wq.strides[1]]);
        p.additive_wk.push_back(a.wk.data[r * a.wk.strides[0] + c * a.wk.strides[1]]);
      }
    p.additive_w.assign(a.w.begin(), a.w.end());
  }
  if (o.rope.enabled()) p.rope = to_string(o.rope.pairing), p.rope_base = o.rope.base;
  p.alibi = o.alibi;
  if (!o.relative_bias.empty()) {
    const auto& t = o.relative_bias;
    for (std::int64_t r = 0; r < t.shape[0]; ++r)
      for (std::int64_t c = 0; c < t.shape[1]; ++c) p.relative_bias.push_back(t.data[r * t.strides[0] + c * t.strides[1]]);
  }
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider in(bytes, size);
  const std::int64_t B = in.ConsumeIntegralInRange(0, 2), Hq = in.ConsumeIntegralInRange(0, 4),
                     Hkv = in.ConsumeIntegralInRange(0, 4), Nq = in.ConsumeIntegralInRange(0, 9),
                     Nk = in.ConsumeIntegralInRange(0, 9), D = in.ConsumeIntegralInRange(0, 9),
                     Dv = in.ConsumeIntegralInRange(0, 9);
  Buffer qb, kb, vb, ob, lb;
  // out over its own buffer, or over q's or v's (an overlap attention() must refuse).
  const int out_home = in.ConsumeIntegralInRange(0, 9);
  std::vector<float>& out_memory = out_home == 0 ? qb.data : out_home == 1 ? vb.data : ob.data;
  const auto q = draw_view<4>(in, qb.data, {B, Hq, Nq, D});
  const auto k = draw_view<4>(in, kb.data, {B, Hkv, Nk, D});
  const auto v = draw_view<4>(in, vb.data, {B, Hkv, Nk, Dv});
  const auto out = draw_view<4>(in, out_memory, {in.ConsumeBool() ? B : B + 1, Hq, Nq, Dv});
  std::optional<TensorView<float, 3>> lse;  // none when not drawn
  if (in.ConsumeBool()) {
    lse = draw_view<3>(in, lb.data, {B, Hq, in.ConsumeBool() ? Nq : Nq + 1});
    if (!lse) return 0;
  }
  if (!q || !k || !v || !out) return 0;
  DrawnOptions drawn;
  draw_options(in, drawn, Nq, Nk, Hq, D);
  // The values from a generator the bytes seed (bytes drawn one per value would go to them).
  std::mt19937 rng(in.ConsumeIntegral<std::uint32_t>());
  std::uniform_int_distribution<int> eighths(-16, 16);
  for (Buffer* b : {&qb, &kb, &vb}) {
    for (float& x : b->data) x = static_cast<float>(eighths(rng)) / 8.0f;
  }

  const std::vector<float> out_before = out_memory, lse_before = lb.data;
  AttentionStats stats;
  try {
    stats = attention(as_const(*q), as_const(*k), as_const(*v), *out, drawn.options,
                      lse.value_or(TensorView<float, 3>{}));
  } catch (const Error&) {
    if (std::memcmp(out_memory.data(), out_before.data(), out_before.size() * sizeof(float)) != 0 ||
        std::memcmp(lb.data.data(), lse_before.data(), lse_before.size() * sizeof(float)) != 0) {
      bug("attention() wrote before throwing Error");
    }
    return 0;
  }
  (void)stats;
  const reference::Result expected = reference::attention(reference_problem(as_const(*q), as_const(*k), as_const(*v),
                                                                            drawn.options));
  const std::vector<double> v_values = gather(as_const(*v));
  double max_abs_value = 0;
  for (double x : v_values) max_abs_value = std::max(max_abs_value, std::abs(x));
  std::vector<float> actual;
  const HeadsView<const float> o = as_const(*out);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < Hq; ++h)
      for (std::int64_t n = 0; n < Nq; ++n)
        for (std::int64_t d = 0; d < Dv; ++d) actual.push_back(at(o, b, h, n, d));
  const check::Comparison c = check::compare(actual, expected.out, expected.max_abs_score, max_abs_value);
  if (!c.passed) bug("out differs from the reference:", c.failure);
  if (lse.has_value() && drawn.options.normalizer == Normalizer::softmax) {
    std::vector<float> lse_values;
    const TensorView<float, 3>& l = *lse;
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < Hq; ++h)
        for (std::int64_t n = 0; n < Nq; ++n) lse_values.push_back(l.data[b * l.strides[0] + h * l.strides[1] + n * l.strides[2]]);
    const check::Comparison cl = check::compare(lse_values, expected.lse, expected.max_abs_score, 1.0);
    if (!cl.passed) bug("lse differs from the reference:", cl.failure);
  }
  return 0;
}
