#include "bench/onednn_attention.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace longattn::bench {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct OneDnnAttention::Impl {
  std::int64_t nq, nk, d, dv;
  Window window;
  std::int64_t block_q = 0, block_k = 0;
  std::vector<std::vector<char>> visible_blocks;  // [query block][key block]
  int threads;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::vector<float> scores;
  dnnl::matmul qk, pv;
  dnnl::softmax_forward softmax;
  memory::desc scores_md;
};

OneDnnAttention::OneDnnAttention(std::int64_t nq, std::int64_t nk, std::int64_t d, std::int64_t dv,
                                 const AttentionOptions& options, int threads)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.nq = nq, m.nk = nk, m.d = d, m.dv = dv, m.window = options.window, m.threads = threads;
  const float scale = options.scale.value_or(1.0f / std::sqrt(static_cast<float>(d)));
  if (options.block_sparse.enabled()) {
    m.block_q = options.block_sparse.block_q;
    m.block_k = options.block_sparse.block_k;
    m.visible_blocks.assign((nq + m.block_q - 1) / m.block_q, std::vector<char>((nk + m.block_k - 1) / m.block_k, 0));
    for (const auto& [qb, kb] : options.block_sparse.visible) m.visible_blocks[qb][kb] = 1;
  }
  m.scores.resize(static_cast<std::size_t>(nq * nk));
  m.scores_md = memory::desc({nq, nk}, dt::f32, tag::ab);
  dnnl::primitive_attr qk_attr;
  qk_attr.set_output_scales(0, {scale});
  const memory::desc q_md({nq, d}, dt::f32, tag::ab), kt_md({d, nk}, dt::f32, tag::ba);
  m.qk = dnnl::matmul(dnnl::matmul::primitive_desc(
      dnnl::matmul::desc(q_md, kt_md, m.scores_md), qk_attr, m.engine));
  m.softmax = dnnl::softmax_forward(dnnl::softmax_forward::primitive_desc(
      dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, m.scores_md, 1), m.engine));
  const memory::desc v_md({nk, dv}, dt::f32, tag::ab), o_md({nq, dv}, dt::f32, tag::ab);
  m.pv = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(m.scores_md, v_md, o_md), m.engine));
}

OneDnnAttention::~OneDnnAttention() = default;

std::int64_t OneDnnAttention::scratch_bytes() const {
  return static_cast<std::int64_t>(impl_->scores.size() * sizeof(float));
}

void OneDnnAttention::run(const HeadsView<const float>& q, const HeadsView<const float>& k,
                          const HeadsView<const float>& v, const HeadsView<float>& out) {
  Impl& m = *impl_;
  omp_set_num_threads(m.threads);  // oneDNN runs on OpenMP in Debian's build
  const std::int64_t group = q.shape[1] / k.shape[1];
  memory scores(m.scores_md, m.engine, m.scores.data());
  const std::int64_t offset = m.nk - m.nq;
  for (std::int64_t b = 0; b < q.shape[0]; ++b) {
    for (std::int64_t h = 0; h < q.shape[1]; ++h) {
      const std::int64_t g = h / group;
      auto at = [&](const auto& t, std::int64_t head) {
        return const_cast<float*>(t.data + b * t.strides[0] + head * t.strides[1]);
      };
      memory qm(memory::desc({m.nq, m.d}, dt::f32, tag::ab), m.engine, at(q, h));
      memory km(memory::desc({m.d, m.nk}, dt::f32, tag::ba), m.engine, at(k, g));
      memory vm(memory::desc({m.nk, m.dv}, dt::f32, tag::ab), m.engine, at(v, g));
      memory om(memory::desc({m.nq, m.dv}, dt::f32, tag::ab), m.engine, at(out, h));
      m.qk.execute(m.stream, {{DNNL_ARG_SRC, qm}, {DNNL_ARG_WEIGHTS, km}, {DNNL_ARG_DST, scores}});
      m.stream.wait();
      if (!m.window.is_full() || m.block_q > 0) {
        float* s = m.scores.data();
        constexpr float hidden = -std::numeric_limits<float>::infinity();
#pragma omp parallel for num_threads(m.threads)
        for (std::int64_t i = 0; i < m.nq; ++i) {
          float* row = s + i * m.nk;
          const std::int64_t pos = i + offset;
          const std::int64_t lo = m.window.left < 0 ? 0 : std::clamp<std::int64_t>(pos - m.window.left, 0, m.nk);
          const std::int64_t hi = m.window.right < 0 ? m.nk : std::clamp<std::int64_t>(pos + m.window.right + 1, lo, m.nk);
          std::fill(row, row + lo, hidden);
          std::fill(row + hi, row + m.nk, hidden);
          if (m.block_q > 0) {
            const auto& blocks = m.visible_blocks[i / m.block_q];
            for (std::size_t kb = 0; kb < blocks.size(); ++kb) {
              if (!blocks[kb]) {
                std::fill(row + kb * m.block_k, row + std::min<std::int64_t>(m.nk, (kb + 1) * m.block_k), hidden);
              }
            }
          }
        }
      }
      m.softmax.execute(m.stream, {{DNNL_ARG_SRC, scores}, {DNNL_ARG_DST, scores}});
      m.pv.execute(m.stream, {{DNNL_ARG_SRC, scores}, {DNNL_ARG_WEIGHTS, vm}, {DNNL_ARG_DST, om}});
      m.stream.wait();
    }
  }
}

}  // namespace longattn::bench
