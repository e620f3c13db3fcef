#include "bench/sequence_baselines.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <unordered_map>
#include <vector>

#include "bench/measure.hpp"
#include "longattn/error.hpp"

namespace longattn::bench {
namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

// A memory object in the layout the primitive chose, filled with small random values.
memory random_memory(const memory::desc& md, const dnnl::engine& engine, float magnitude, unsigned seed) {
  memory m(md, engine);
  const std::size_t floats = md.get_size() / sizeof(float);
  const Tensor values = random_tensor(static_cast<std::int64_t>(floats), seed);
  float* data = static_cast<float*>(m.get_data_handle());
  for (std::size_t i = 0; i < floats; ++i) data[i] = values[i] * magnitude;
  return m;
}

class Conv1d final : public SequenceBaseline {
 public:
  Conv1d(std::int64_t n, std::int64_t d, std::int64_t k, int threads) : n_(n), d_(d), k_(k), threads_(threads) {
    const memory::desc src({1, d, n}, dt::f32, tag::any), weights({d, d, k}, dt::f32, tag::any),
        dst({1, d, n}, dt::f32, tag::any);
    const dnnl::convolution_forward::primitive_desc pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                        src, weights, dst, {1}, {k / 2}, {k - 1 - k / 2}),
        engine_);
    conv_ = dnnl::convolution_forward(pd);
    args_ = {{DNNL_ARG_SRC, random_memory(pd.src_desc(), engine_, 1.0f, 11)},
             {DNNL_ARG_WEIGHTS, random_memory(pd.weights_desc(), engine_, 0.1f, 12)},
             {DNNL_ARG_DST, memory(pd.dst_desc(), engine_)}};
  }
  void run() override {
    omp_set_num_threads(threads_);
    conv_.execute(stream_, args_);
    stream_.wait();
  }
  double flops() const override { return 2.0 * double(k_) * double(d_) * double(d_) * double(n_); }

 private:
  std::int64_t n_, d_, k_;
  int threads_;
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  dnnl::convolution_forward conv_;
  std::unordered_map<int, memory> args_;
};

class Recurrent final : public SequenceBaseline {
 public:
  Recurrent(bool lstm, std::int64_t n, std::int64_t d, int threads) : lstm_(lstm), n_(n), d_(d), threads_(threads) {
    const std::int64_t gates = lstm ? 4 : 1;
    const memory::desc src_layer({n, 1, d}, dt::f32, tag::tnc), dst_layer({n, 1, d}, dt::f32, tag::tnc);
    const memory::desc weights_layer({1, 1, d, gates, d}, dt::f32, tag::any);
    const memory::desc weights_iter({1, 1, d, gates, d}, dt::f32, tag::any);
    const memory::desc bias({1, 1, gates, d}, dt::f32, tag::ldgo), none;
    const auto direction = dnnl::rnn_direction::unidirectional_left2right;
    const auto inference = dnnl::prop_kind::forward_inference;
    if (lstm) {
      const dnnl::lstm_forward::primitive_desc pd(
          dnnl::lstm_forward::desc(inference, direction, src_layer, none, none, weights_layer, weights_iter, bias,
                                   dst_layer, none, none),
          engine_);
      cell_ = dnnl::lstm_forward(pd);
      fill_args(pd.src_layer_desc(), pd.weights_layer_desc(), pd.weights_iter_desc(), pd.bias_desc(),
                pd.dst_layer_desc());
    } else {
      const dnnl::vanilla_rnn_forward::primitive_desc pd(
          dnnl::vanilla_rnn_forward::desc(inference, dnnl::algorithm::eltwise_tanh, direction, src_layer, none,
                                          weights_layer, weights_iter, bias, dst_layer, none),
          engine_);
      cell_ = dnnl::vanilla_rnn_forward(pd);
      fill_args(pd.src_layer_desc(), pd.weights_layer_desc(), pd.weights_iter_desc(), pd.bias_desc(),
                pd.dst_layer_desc());
    }
  }
  void run() override {
    omp_set_num_threads(threads_);
    cell_.execute(stream_, args_);
    stream_.wait();
  }
  // Per step: input and recurrent matrix-vector products for every gate.
  double flops() const override { return 2.0 * 2.0 * (lstm_ ? 4.0 : 1.0) * double(d_) * double(d_) * double(n_); }

 private:
  void fill_args(const memory::desc& src, const memory::desc& wl, const memory::desc& wi, const memory::desc& b,
                 const memory::desc& dst) {
    const float scale = 1.0f / static_cast<float>(d_);
    args_ = {{DNNL_ARG_SRC_LAYER, random_memory(src, engine_, 1.0f, 21)},
             {DNNL_ARG_WEIGHTS_LAYER, random_memory(wl, engine_, scale, 22)},
             {DNNL_ARG_WEIGHTS_ITER, random_memory(wi, engine_, scale, 23)},
             {DNNL_ARG_BIAS, random_memory(b, engine_, 0.1f, 24)},
             {DNNL_ARG_DST_LAYER, memory(dst, engine_)}};
  }

  bool lstm_;
  std::int64_t n_, d_;
  int threads_;
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  dnnl::primitive cell_;
  std::unordered_map<int, memory> args_;
};

}  // namespace

std::unique_ptr<SequenceBaseline> make_sequence_baseline(const std::string& kind, std::int64_t n, std::int64_t d,
                                                         std::int64_t k, int threads) {
  if (kind == "cnn") return std::make_unique<Conv1d>(n, d, k, threads);
  if (kind == "rnn" || kind == "lstm") return std::make_unique<Recurrent>(kind == "lstm", n, d, threads);
  throw Error("sequence model: expected cnn, rnn or lstm, got \"" + kind + "\"");
}

}  // namespace longattn::bench
