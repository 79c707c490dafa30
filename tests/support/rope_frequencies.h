#pragma once
// RoPE's inverse frequencies as the backends' rope ops take them: theta^(−2i / head_dim) for i below head_dim / 2.
#include <cmath>
#include <cstdint>
#include <vector>

namespace octet::testing {

inline std::vector<float> rope_inverse_frequencies(int64_t head_dim, float theta) {
  std::vector<float> freqs(static_cast<size_t>(head_dim / 2));
  for (int64_t i = 0; i < head_dim / 2; ++i) freqs[i] = std::pow(theta, -2.0f * i / head_dim);
  return freqs;
}

}  // namespace octet::testing
