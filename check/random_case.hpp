// Random cases over everything the engine has, for `longattn selftest`: shapes from one token
// to past the key chunk and the split-keys schedule, D and Dv from 1 to 512, every layout,
// mask, encoding, normalizer and dtype, and the multi-head layer. Each case is drawn from its
// (seed, index) alone, so any one of them can be drawn again by itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "check/attention_case.hpp"
#include "check/layer_case.hpp"

namespace longattn::check {

struct RandomCase {
  std::optional<LayerCase> layer;  // set: a layer case, `attention` unused
  AttentionCase attention;
  std::vector<std::string> features;  // what the case exercises, for the per-feature report

  std::string describe() const { return layer ? layer->describe() : attention.describe(); }
};

struct DrawLimits {
  std::int64_t max_n = 8192;  // the most queries or keys of a case
  // The most visible (query, key) pairs × (D + Dv) over all heads: keeps the fp64 reference
  // and the scalar path to a fraction of a second per case.
  double max_work = double(1 << 25);
};

RandomCase draw_case(std::uint64_t seed, std::int64_t index, const DrawLimits& limits);

CaseReport run(const RandomCase& c, const RunOn& on);

}  // namespace longattn::check
