// bfloat16 storage: the upper half of an IEEE fp32 (sign, 8 exponent bits, 7 mantissa bits).
//
// Tensors of bf16 take half the memory of fp32 and half the bandwidth to read (a decoding
// step is bound by reading its keys and values). Widening to fp32 is exact; attention()
// on bf16 inputs multiplies them as bf16 pairs where the CPU can (AVX512-BF16), otherwise
// in fp32 from the widened values (AttentionOptions::bf16_products).
#pragma once

#include <bit>
#include <cstdint>

namespace longattn {

struct bf16 {
  std::uint16_t bits = 0;

  bf16() = default;
  // Rounded to nearest, ties to even; a NaN stays a (quiet) NaN, infinities stay infinite,
  // values past the largest bf16 (3.39e38) round to infinity.
  explicit bf16(float x) : bits(round(x)) {}
  static constexpr bf16 from_bits(std::uint16_t b) {
    bf16 x;
    x.bits = b;
    return x;
  }
  explicit operator float() const { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }

  friend bool operator==(bf16 a, bf16 b) { return a.bits == b.bits; }

 private:
  static std::uint16_t round(float x) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // NaN: quiet
    const std::uint32_t lsb = (u >> 16) & 1u;
    return static_cast<std::uint16_t>((u + 0x7fffu + lsb) >> 16);
  }
};

static_assert(sizeof(bf16) == 2, "bf16 tensors are arrays of 16-bit values");

}  // namespace longattn
