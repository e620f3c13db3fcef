// Every micro-kernel of every kernel table on its own, against plain float64 loops: one tester
// object with builder-style parameters (rows, depth, keys, offsets, each optional argument),
// so that each case is one line, as XNNPACK tests its micro-kernels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "simd/kernel_table.hpp"

namespace longattn::testing {

// A table to test and what to call it in a failure.
struct KernelTarget {
  const simd::KernelTable* table;
  std::string name;
};

// Every table this CPU runs (LONGATTN_TEST_ISAS narrows them), both AVX2 builds where AVX2
// runs.
std::vector<KernelTarget> kernel_targets();

// The bf16 products where the CPU has them (AVX512-BF16), else none.
std::vector<KernelTarget> bf16_targets();

class KernelTester {
 public:
  KernelTester& rows(std::int64_t n) { rows_ = n; return *this; }
  KernelTester& depth(std::int64_t n) { depth_ = n; return *this; }
  // Keys [first_key, first_key + keys) of the packed panels; in lanes' multiples where a
  // kernel asks for them.
  KernelTester& first_key(std::int64_t n) { first_key_ = n; return *this; }
  KernelTester& keys(std::int64_t n) { keys_ = n; return *this; }
  KernelTester& columns(std::int64_t n) { columns_ = n; return *this; }  // dv, or the width of a row pass
  KernelTester& diagonals(bool on) { diagonals_ = on; return *this; }
  KernelTester& bounds(bool on) { bounds_ = on; return *this; }
  KernelTester& row_scale(bool on) { row_scale_ = on; return *this; }
  KernelTester& streamed(bool on) { streamed_ = on; return *this; }
  KernelTester& seed(unsigned s) { seed_ = s; return *this; }

  // The tile kernels.
  void qk_scores(const KernelTarget& target) const;
  void qk_probabilities(const KernelTarget& target) const;
  void pv_tile(const KernelTarget& target) const;
  void additive_tile(const KernelTarget& target) const;
  // Element-wise.
  void exp2_rows(const KernelTarget& target) const;
  void add_diagonal_bias(const KernelTarget& target) const;
  void sigmoid_and_relu_rows(const KernelTarget& target) const;
  void max_of(const KernelTarget& target) const;
  void scale_rows(const KernelTarget& target) const;
  void widen_bf16(const KernelTarget& target) const;
  // Packing.
  void pack_key_panel(const KernelTarget& target) const;
  // The bf16 products.
  void bf16_qk_scores(const KernelTarget& target) const;
  void bf16_qk_probabilities(const KernelTarget& target) const;
  void bf16_pv_tile(const KernelTarget& target) const;
  void bf16_packing(const KernelTarget& target) const;

 private:
  std::int64_t rows_ = 1, depth_ = 1, first_key_ = 0, keys_ = 0, columns_ = 0;
  bool diagonals_ = false, bounds_ = false, row_scale_ = false, streamed_ = false;
  unsigned seed_ = 1;
};

}  // namespace longattn::testing
