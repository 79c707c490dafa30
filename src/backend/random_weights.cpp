// Host-side defaults for the Backend's random weights: normal values with a fixed seed, uploaded
// through the ordinary constructors. Backends with device memory override these.
#include "backend/backend.h"

#include <random>

namespace octet::backend {
namespace {

constexpr float kWeightStddev = 0.02f;  // typical of trained Llama linear layers

std::vector<float> normal_values(int64_t count, float mean, float stddev, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> values(static_cast<size_t>(count));
  for (auto& v : values) v = dist(rng);
  return values;
}

}  // namespace

std::unique_ptr<LinearWeight> Backend::make_random_linear(int64_t out_features, int64_t in_features,
                                                          const LinearSpec& spec, uint64_t seed) {
  auto values = normal_values(out_features * in_features, 0.0f, kWeightStddev, seed);
  return make_linear(values.data(), out_features, in_features, spec);
}

std::unique_ptr<VectorWeight> Backend::make_random_vector(int64_t size, uint64_t seed) {
  auto values = normal_values(size, 1.0f, 0.05f, seed);  // norm weights sit near 1
  return make_vector(values.data(), size);
}

std::unique_ptr<EmbeddingTable> Backend::make_random_embedding(int64_t vocab, int64_t hidden, EmbeddingFormat format,
                                                              uint64_t seed) {
  auto values = normal_values(vocab * hidden, 0.0f, kWeightStddev, seed);
  return make_embedding(values.data(), vocab, hidden, format);
}

}  // namespace octet::backend
