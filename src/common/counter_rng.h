#pragma once
// A counter-based uniform draw: the value depends only on (seed, step), never on what was drawn
// before, so a sequence's tokens are reproducible whatever batch or device samples its rows. The
// same inline code runs on the host and in CUDA kernels (sampling.cu), giving the same double.
#include <cstdint>

#if defined(__CUDACC__)
#define OCTET_HOST_DEVICE __host__ __device__
#else
#define OCTET_HOST_DEVICE
#endif

namespace octet {

// splitmix64's output function: a bijection of 64-bit words with good avalanche.
OCTET_HOST_DEVICE inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A double in [0, 1) from the top 53 bits of the hash of (seed, step).
OCTET_HOST_DEVICE inline double counter_uniform(uint64_t seed, uint64_t step) {
  return static_cast<double>(splitmix64(splitmix64(seed) ^ step) >> 11) * 0x1.0p-53;
}

}  // namespace octet
