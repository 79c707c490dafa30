#pragma once
// bfloat16 conversions: round to nearest even (NaN kept quiet), and the exact widening.
#include <bit>
#include <cstdint>

namespace octet {

inline uint16_t float_to_bf16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float bf16_to_float(uint16_t value) { return std::bit_cast<float>(static_cast<uint32_t>(value) << 16); }

inline float round_to_bf16(float value) { return bf16_to_float(float_to_bf16(value)); }

}  // namespace octet
