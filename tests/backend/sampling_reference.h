#pragma once
// Slow, obvious references for Backend::sample_rows tests (CPU and CUDA): argmax, the exact
// probabilities the pipeline (temperature → top-k → softmax → top-p → min-p) gives each token, and a
// frequency check of many draws against them.
#include "backend/backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

namespace octet::backend::sampling_reference {

// The lowest index of the largest value, NaN counted as -inf (all -inf or NaN: 0).
inline int32_t reference_argmax(std::span<const float> logits) {
  int32_t best = 0;
  float best_value = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i];
    if (i == 0 || v > best_value) {
      best_value = v;
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

// Token ids in the pipeline's order: processed value descending, then index ascending.
inline std::vector<int32_t> reference_order(const std::vector<float>& x) {
  std::vector<int32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
  return order;
}

// Each token's probability (finite logits, temperature > 0). slack > 0 widens the cuts for
// implementations that round differently: a token is then "possible" (probability reported as its
// unfiltered share, never 0) when it is within slack (relative) of a top-p or min-p boundary.
inline std::vector<double> reference_probabilities(std::span<const float> logits, const RowSampling& p, double slack = 0) {
  std::vector<float> x(logits.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = logits[i] / p.temperature;
  const std::vector<int32_t> order = reference_order(x);
  size_t kept = order.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < kept) kept = static_cast<size_t>(p.top_k);
  const double max_x = x[order[0]];
  std::vector<double> weight(x.size(), 0.0);
  double total = 0;
  for (size_t r = 0; r < kept; ++r) total += weight[order[r]] = std::exp(x[order[r]] - max_x);
  if (p.top_p < 1.0f) {
    const double target = p.top_p * total * (1 + slack);
    double before = 0;
    size_t n = 0;
    while (n < kept && (n == 0 || before < target)) before += weight[order[n++]];
    kept = n;
  }
  std::vector<double> probability(x.size(), 0.0);
  double kept_total = 0;
  for (size_t r = 0; r < kept; ++r) {
    const int32_t t = order[r];
    if (p.min_p > 0.0f && weight[t] < std::min(p.min_p, 1.0f) * (1 - slack)) continue;
    probability[t] = weight[t];
    kept_total += weight[t];
  }
  for (double& v : probability) v /= kept_total;
  return probability;
}

// counts[t] of draws against probabilities: a token of probability 0 never drawn, and each other
// within 5.5 standard deviations of its expected count (normal approximation; two-sided tail 3.8e-8
// per token, so a correct sampler fails a vocabulary of <= 20 tokens with probability < 1e-6).
inline void expect_frequencies(const std::vector<int64_t>& counts, const std::vector<double>& probability,
                               const char* what) {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  for (size_t t = 0; t < counts.size(); ++t) {
    const double expected = probability[t] * static_cast<double>(n);
    if (probability[t] == 0) {
      EXPECT_EQ(counts[t], 0) << what << ": token " << t << " is outside the kept set";
      continue;
    }
    const double sd = std::sqrt(expected * (1 - probability[t]));
    EXPECT_LE(std::abs(static_cast<double>(counts[t]) - expected), 5.5 * sd + 1e-9)
        << what << ": token " << t << " drawn " << counts[t] << " times, expected " << expected;
  }
}

// The settings of the distribution tests over a small vocabulary (no ties; cuts away from boundaries).
struct DistributionCase {
  const char* name;
  RowSampling sampling;
};
inline std::vector<float> distribution_logits() { return {1.0f, 2.0f, 0.5f, -1.0f, 1.5f, 0.0f, 2.3f, -0.4f}; }
inline std::vector<DistributionCase> distribution_cases(uint64_t seed) {
  auto with = [seed](float temperature, int32_t top_k, float top_p, float min_p) {
    return RowSampling{temperature, top_k, top_p, min_p, seed, 0};
  };
  return {{"temperature 0.8", with(0.8f, 0, 1.0f, 0.0f)},
          {"top-k 3", with(1.0f, 3, 1.0f, 0.0f)},
          {"top-p 0.7", with(1.0f, 0, 0.7f, 0.0f)},
          {"min-p 0.2", with(1.2f, 0, 1.0f, 0.2f)},
          {"top-k 5, top-p 0.9, min-p 0.1", with(0.9f, 5, 0.9f, 0.1f)}};
}

// Every distribution case drawn kDraws times (steps 0, 1, …) from one [kDraws, small vocabulary]
// logits buffer: make_logits(rows, cols, values) builds it on the backend under test, sample(logits,
// settings) returns one token per row; the counts must follow reference_probabilities.
template <typename MakeLogits, typename Sample>
void expect_draws_follow_probabilities(uint64_t seed, MakeLogits&& make_logits, Sample&& sample) {
  constexpr int64_t kDraws = 100000;
  const auto small = distribution_logits();
  const auto vocab = static_cast<int64_t>(small.size());
  std::vector<float> values;
  for (int64_t i = 0; i < kDraws; ++i) values.insert(values.end(), small.begin(), small.end());
  auto logits = make_logits(kDraws, vocab, values);
  for (const auto& c : distribution_cases(seed)) {
    std::vector<RowSampling> settings(kDraws, c.sampling);
    for (int64_t i = 0; i < kDraws; ++i) settings[i].step = static_cast<uint64_t>(i);
    std::vector<int64_t> counts(static_cast<size_t>(vocab), 0);
    for (int32_t t : sample(*logits, settings)) {
      ASSERT_GE(t, 0) << c.name;
      ASSERT_LT(t, vocab) << c.name;
      ++counts[static_cast<size_t>(t)];
    }
    expect_frequencies(counts, reference_probabilities(small, c.sampling), c.name);
  }
}

}  // namespace octet::backend::sampling_reference
