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

// ‖a − b‖ / ‖b‖ in double.
inline double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace octet::testing
