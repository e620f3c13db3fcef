// One multi-head layer problem as the differential checks run it: weights and tokens drawn at
// random (as nn.Linear initializes them), the layer built and run on chosen ISA paths and
// thread counts, each output compared with the fp64 reference layer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "check/attention_case.hpp"
#include "check/reference_multi_head.hpp"
#include "longattn/plan.hpp"

namespace longattn::check {

struct LayerCase {
  reference::LayerProblem problem;  // sizes and options; x, weights and table drawn by run()
  std::int64_t row_stride = 0;      // x and y rows this far apart (0: E, contiguous)
  bool packed = false;              // in_proj_weight [3E, E] instead of wq, wk, wv
  bool biases = true;
  DType precision = DType::f32;     // the layer's (MultiHeadConfig::precision): bf16 checked to 2e-2
  bool qk_int8 = false;             // int8 scores in attention, on the paths with them: checked to 2e-2
  unsigned seed = 1;
  // Applied to the drawn problem before anything runs: a NaN or inf put somewhere.
  std::function<void(reference::LayerProblem&)> poison;

  LayerCase() = default;
  LayerCase(std::int64_t batch, std::int64_t n, std::int64_t e, std::int64_t heads, std::int64_t kv_heads,
            std::int64_t head_dim = 0);
  std::string describe() const;
};

// oneDNN's projections may split their sums differently per thread count: the thread counts'
// outputs must agree within the tolerance, and a second forward on one layer bit for bit.
CaseReport run(const LayerCase& c, const RunOn& on);

}  // namespace longattn::check
