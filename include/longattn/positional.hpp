// Positional encodings (DESIGN.md §1): attention alone ignores order, these put it back.
//
// Absolute encodings are added to the layer's input X (sinusoidal_table, or a learned table
// of the caller's); RoPE rotates q and k inside the kernel; ALiBi and the relative position
// bias add a per-(query, key) term to the scores inside the kernel, never as an n × n tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longattn/export.hpp"
#include "longattn/tensor_view.hpp"

namespace longattn {

// Which features RoPE rotates together: `half` pairs (i, i + D/2) (GPT-NeoX, LLaMA),
// `interleaved` pairs (2i, 2i + 1) (GPT-J). Pair i turns by position · base^(-2i/D).
enum class RopePairing { none, half, interleaved };

LONGATTN_API std::string to_string(RopePairing pairing);
LONGATTN_API RopePairing parse_rope_pairing(const std::string& name);  // throws Error

struct Rope {
  RopePairing pairing = RopePairing::none;
  double base = 10000.0;
  bool enabled() const { return pairing != RopePairing::none; }
};

// ALiBi slopes of Press et al. for `heads` heads: 2^(-8(h+1)/H) when H is a power of two;
// otherwise those of the nearest lower power of two, then every other slope of twice it.
LONGATTN_API std::vector<double> alibi_slopes(std::int64_t heads);

// The sinusoidal table of Vaswani et al., [n, d] row-major into `out` (n·d floats):
// P[p, 2i] = sin(p / 10000^(2i/d)), P[p, 2i+1] = cos(p / 10000^(2i/d)). Any d ≥ 1.
LONGATTN_API void sinusoidal_table(std::int64_t n, std::int64_t d, float* out);
LONGATTN_API std::vector<float> sinusoidal_table(std::int64_t n, std::int64_t d);

}  // namespace longattn
