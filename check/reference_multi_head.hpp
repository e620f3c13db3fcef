// The fp64 reference of the multi-head layer (DESIGN.md §1, PyTorch conventions): positions
// added to x, projections, reference::attention per head, output projection — in double.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longattn::reference {

struct LayerProblem {
  std::int64_t batch = 1, n = 1, e = 1, heads = 1, kv_heads = 1, head_dim = 1;
  std::vector<float> x;               // [B, N, E]
  std::vector<float> wq, wk, wv, wo;  // nn.Linear [out, in]
  std::vector<float> bq, bk, bv, bo;  // empty: no bias
  std::string positions = "none";     // none, sinusoidal, learned
  std::vector<float> table;           // learned [max_len, E]
  std::int64_t window_left = -1, window_right = -1;
  std::string rope;                   // "", half, interleaved
  bool alibi = false;
};

std::vector<double> multi_head(const LayerProblem& p);  // y [B, N, E]

}  // namespace longattn::reference
