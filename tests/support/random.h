#pragma once
// Fresh random inputs for every run, with the seed printed so a failure can be replayed
// (OCTET_TEST_SEED=<seed> fixes it).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

namespace octet::testing {

inline uint64_t test_seed(const std::string& test_name) {
  const char* fixed = std::getenv("OCTET_TEST_SEED");
  uint64_t seed = fixed ? std::strtoull(fixed, nullptr, 10) : std::random_device{}();
  std::cout << "[seed] " << test_name << ": " << seed << "\n";
  return seed;
}

inline std::vector<float> random_normal(std::mt19937_64& rng, size_t count, float stddev = 1.0f) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

// E4M3 codes drawn uniformly over the finite ones (0x00–0x7E and 0x80–0xFE: no NaN codes).
inline std::vector<uint8_t> random_e4m3_codes(std::mt19937_64& rng, size_t count) {
  std::uniform_int_distribution<int> code(0, 253);
  std::vector<uint8_t> codes(count);
  for (auto& c : codes) {
    const int v = code(rng);
    c = static_cast<uint8_t>(v < 127 ? v : v + 1);
  }
  return codes;
}

// Scales in [0.001, 0.01): per-row or per-channel scales of FP8 products.
inline std::vector<float> random_fp8_scales(std::mt19937_64& rng, size_t count) {
  std::uniform_real_distribution<float> scale(0.001f, 0.01f);
  std::vector<float> scales(count);
  for (auto& s : scales) s = scale(rng);
  return scales;
}

// ‖a − b‖ / ‖b‖ in double.
inline double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff / norm);
}
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  return relative_error(a, std::vector<double>(b.begin(), b.end()));
}

// Whether any value is NaN: an output element left unwritten (tests poison outputs with NaN first).
inline bool any_nan(const std::vector<float>& values) {
  for (float v : values)
    if (std::isnan(v)) return true;
  return false;
}

}  // namespace octet::testing
