#include "engine/sampler.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace octet::engine {
namespace {

std::vector<float> logits_of(std::initializer_list<float> values) { return std::vector<float>(values); }

int32_t draw(SamplingParams p, std::vector<float> logits, std::vector<int32_t> history = {}) {
  Sampler s(p);
  return s.sample(logits, history);
}

TEST(Sampler, GreedyTakesTheArgmaxAndTheLowestIndexOnTies) {
  SamplingParams p;
  p.temperature = 0;
  EXPECT_EQ(draw(p, logits_of({0.1f, 2.0f, -1.0f, 2.0f})), 1);
  EXPECT_EQ(draw(p, logits_of({NAN, 0.5f, 0.2f})), 1);  // NaN never wins
}

TEST(Sampler, SameSeedSameTokensDifferentSeedsDiffer) {
  std::mt19937_64 rng(testing::test_seed("Sampler.Seeds"));
  auto logits = testing::random_normal(rng, 1000);
  auto run = [&](uint64_t seed) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) {
      auto copy = logits;
      out.push_back(s.sample(copy, {}));
    }
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampler, TopKOneAndTinyTopPAreGreedy) {
  std::mt19937_64 rng(testing::test_seed("Sampler.TopK"));
  auto logits = testing::random_normal(rng, 500);
  const int32_t argmax = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  for (uint64_t seed = 0; seed < 20; ++seed) {
    SamplingParams k{1.0f, 1, 1.0f, 0.0f, 1.0f, seed};
    SamplingParams top_p{1.0f, 0, 1e-6f, 0.0f, 1.0f, seed};
    EXPECT_EQ(draw(k, logits), argmax);
    EXPECT_EQ(draw(top_p, logits), argmax);
  }
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  // p ∝ exp: token 0 has e^5 against e^0 for the others; min_p 0.1 keeps token 0 alone.
  SamplingParams p{1.0f, 0, 1.0f, 0.1f, 1.0f, 0};
  for (uint64_t seed = 0; seed < 200; ++seed) {
    p.seed = seed;
    EXPECT_EQ(draw(p, logits_of({5.0f, 0.0f, 0.0f, 0.0f})), 0);
  }
}

TEST(Sampler, RepetitionPenaltyCanMoveTheArgmax) {
  SamplingParams p{0.0f, 0, 1.0f, 0.0f, 2.0f, 0};
  EXPECT_EQ(draw(p, logits_of({3.0f, 2.0f, -1.0f})), 0);
  EXPECT_EQ(draw(p, logits_of({3.0f, 2.0f, -1.0f}), {0}), 1);  // 3/2 < 2
  // Negative logits are multiplied, pushing them further down.
  EXPECT_EQ(draw(p, logits_of({-1.0f, -1.5f}), {0}), 1);  // -2 < -1.5
}

TEST(Sampler, FrequenciesFollowTheSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f};
  double total = 0;
  std::vector<double> expected;
  for (float l : logits) total += std::exp(l);
  for (float l : logits) expected.push_back(std::exp(l) / total);
  SamplingParams p{1.0f, 0, 1.0f, 0.0f, 1.0f, testing::test_seed("Sampler.Frequencies")};
  Sampler s(p);
  std::map<int32_t, int> counts;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    auto copy = logits;
    counts[s.sample(copy, {})]++;
  }
  // 4 standard deviations of a binomial proportion at n = 20000: at most 0.0142.
  for (size_t t = 0; t < logits.size(); ++t)
    EXPECT_NEAR(counts[static_cast<int32_t>(t)] / double(draws), expected[t], 0.015) << "token " << t;
}

TEST(Sampler, TemperatureSharpens) {
  const std::vector<float> logits = {1.0f, 0.0f};
  auto frequency_of_first = [&](float temperature) {
    SamplingParams p{temperature, 0, 1.0f, 0.0f, 1.0f, 7};
    Sampler s(p);
    int first = 0;
    for (int i = 0; i < 5000; ++i) {
      auto copy = logits;
      first += s.sample(copy, {}) == 0;
    }
    return first / 5000.0;
  };
  EXPECT_GT(frequency_of_first(0.2f), 0.98);  // e^5 : 1
  EXPECT_NEAR(frequency_of_first(1.0f), std::exp(1.0) / (1 + std::exp(1.0)), 0.03);
}

}  // namespace
}  // namespace octet::engine
