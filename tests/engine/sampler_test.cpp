#include "engine/sampler.h"

#include "common/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <random>
#include <vector>

namespace octet::engine {
namespace {

// The sampler modifies logits in place, so every draw gets a fresh copy.
std::vector<int32_t> draw(const SamplingParams& params, const std::vector<float>& logits, int count,
                          const std::vector<int32_t>& previous = {}) {
  Sampler sampler(params);
  std::vector<int32_t> tokens;
  for (int i = 0; i < count; ++i) {
    std::vector<float> copy = logits;
    tokens.push_back(sampler.sample(copy, previous));
  }
  return tokens;
}

std::vector<int> histogram(const std::vector<int32_t>& tokens, size_t vocab) {
  std::vector<int> counts(vocab, 0);
  for (int32_t token : tokens) counts.at(token)++;
  return counts;
}

SamplingParams with_temperature(float temperature, uint64_t seed = 1) {
  SamplingParams params;
  params.temperature = temperature;
  params.seed = seed;
  return params;
}

uint64_t fresh_seed(const char* what) {
  const uint64_t seed = (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
  std::cout << "[ seed     ] " << what << " seed " << seed << "\n";
  return seed;
}

TEST(Sampler, GreedyPicksArgmaxLowestIndexOnTies) {
  EXPECT_EQ(draw(with_temperature(0.0f), {0.1f, 3.0f, -2.0f, 3.0f}, 1)[0], 1);
  EXPECT_EQ(draw(with_temperature(-1.0f), {5.0f, 3.0f}, 1)[0], 0);
  EXPECT_EQ(draw(with_temperature(0.0f), {-1.0f, -1.0f, -1.0f}, 1)[0], 0);
}

TEST(Sampler, SameSeedSameTokens) {
  const uint64_t seed = fresh_seed("determinism");
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const std::vector<float> logits{0.0f, 0.5f, 1.0f, 0.2f, -0.3f, 0.9f, 0.1f, 0.4f};
  SamplingParams params = with_temperature(1.0f, seed);
  params.top_p = 0.95f;
  params.top_k = 6;
  EXPECT_EQ(draw(params, logits, 200), draw(params, logits, 200));
}

TEST(Sampler, DifferentSeedsGiveDifferentSequences) {
  const std::vector<float> logits(16, 0.0f);
  // 200 draws over 16 equally likely tokens: two seeds agreeing by chance has probability 16^-200.
  const std::vector<int32_t> a = draw(with_temperature(1.0f, 1), logits, 200);
  const std::vector<int32_t> b = draw(with_temperature(1.0f, 2), logits, 200);
  EXPECT_NE(a, b);
  const std::vector<int> counts = histogram(a, logits.size());
  for (size_t token = 0; token < counts.size(); ++token) EXPECT_GT(counts[token], 0) << "token " << token;
}

TEST(Sampler, TopKOfOneEqualsGreedy) {
  const uint64_t seed = fresh_seed("top-k=1");
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  SamplingParams top1 = with_temperature(1.5f, seed);
  top1.top_k = 1;
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(50);
    for (float& x : logits) x = normal(rng);
    EXPECT_EQ(draw(top1, logits, 3), draw(with_temperature(0.0f), logits, 3)) << "trial " << trial;
  }
}

TEST(Sampler, TinyTopPEqualsGreedy) {
  const uint64_t seed = fresh_seed("top-p tiny");
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (float top_p : {1e-6f, 0.0f}) {
    SamplingParams params = with_temperature(1.0f, seed);
    params.top_p = top_p;
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<float> logits(50);
      for (float& x : logits) x = normal(rng);
      EXPECT_EQ(draw(params, logits, 3), draw(with_temperature(0.0f), logits, 3)) << "trial " << trial;
    }
  }
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 needs the first two (0.8 ≥ 0.75), not the third.
  const std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams params = with_temperature(1.0f, 7);
  params.top_p = 0.75f;
  const std::vector<int> counts = histogram(draw(params, logits, 4000), logits.size());
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
}

TEST(Sampler, MinPDropsTokensBelowFractionOfTheBest) {
  // Probabilities 0.5, 0.3, 0.15, 0.05; min_p 0.35 keeps p ≥ 0.175: tokens 0 and 1.
  const std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams params = with_temperature(1.0f, 11);
  params.min_p = 0.35f;
  const std::vector<int> counts = histogram(draw(params, logits, 4000), logits.size());
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
  // Renormalised over the survivors: 0.5/0.8 and 0.3/0.8.
  EXPECT_NEAR(counts[0] / 4000.0, 0.625, 0.03);

  params.min_p = 5.0f;  // above 1: only the best token can survive, and it always does
  EXPECT_EQ(histogram(draw(params, logits, 100), logits.size())[0], 100);
}

TEST(Sampler, RepetitionPenaltyChangesTheArgmax) {
  const std::vector<float> logits{2.0f, 1.9f, -1.0f, -1.05f};
  SamplingParams params = with_temperature(0.0f);
  EXPECT_EQ(draw(params, logits, 1)[0], 0);
  params.repetition_penalty = 1.3f;
  // 2.0 / 1.3 ≈ 1.54 falls below 1.9.
  EXPECT_EQ(draw(params, logits, 1, {0})[0], 1);
  // A token seen four times is penalised once: 2.0 / 1.2 ≈ 1.67 still beats 1.6 (2.0 / 1.2^4 would not).
  params.repetition_penalty = 1.2f;
  EXPECT_EQ(draw(params, {2.0f, 1.6f}, 1, {0, 0, 0, 0})[0], 0);
  params.repetition_penalty = 1.3f;

  Sampler sampler(params);
  std::vector<float> penalised{2.0f, 1.9f, -1.0f, -1.05f};
  sampler.sample(penalised, std::vector<int32_t>{0, 2, 2, 99, -4});  // out-of-range ids are ignored
  EXPECT_FLOAT_EQ(penalised[0], 2.0f / 1.3f);
  EXPECT_FLOAT_EQ(penalised[1], 1.9f);
  EXPECT_FLOAT_EQ(penalised[2], -1.3f);  // negative logits are multiplied, once
  EXPECT_FLOAT_EQ(penalised[3], -1.05f);
}

TEST(Sampler, FrequenciesMatchSoftmaxAtTemperatureOne) {
  constexpr uint64_t kSeed = 20240601;
  constexpr int kDraws = 20000;
  // Binomial standard deviation is at most sqrt(0.25 / 20000) ≈ 0.0035; 0.015 is over 4 sigma.
  constexpr double kTolerance = 0.015;
  std::cout << "[ seed     ] softmax frequencies seed " << kSeed << ", tolerance " << kTolerance << "\n";
  const std::vector<float> logits{1.0f, 0.0f, -1.0f, 2.0f, 0.5f};
  double total = 0.0;
  for (float logit : logits) total += std::exp(static_cast<double>(logit));
  const std::vector<int> counts = histogram(draw(with_temperature(1.0f, kSeed), logits, kDraws), logits.size());
  for (size_t token = 0; token < logits.size(); ++token)
    EXPECT_NEAR(counts[token] / static_cast<double>(kDraws), std::exp(static_cast<double>(logits[token])) / total,
                kTolerance)
        << "token " << token;
}

TEST(Sampler, TemperatureSharpensTheDistribution) {
  const std::vector<float> logits{1.0f, 0.0f};
  const int hot = histogram(draw(with_temperature(2.0f, 3), logits, 4000), 2)[0];
  const int cold = histogram(draw(with_temperature(0.25f, 3), logits, 4000), 2)[0];
  // p(0) = 1/(1+e^-0.5) ≈ 0.62 at T=2 and 1/(1+e^-4) ≈ 0.98 at T=0.25.
  EXPECT_NEAR(hot / 4000.0, 0.622, 0.03);
  EXPECT_NEAR(cold / 4000.0, 0.982, 0.01);
}

TEST(Sampler, NanLogitsAreNeverChosen) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> logits{nan, 0.0f, nan, 0.0f};
  const std::vector<int> counts = histogram(draw(with_temperature(1.0f, 5), logits, 500), logits.size());
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(draw(with_temperature(0.0f), {nan, -3.0f, nan}, 1)[0], 1);
}

TEST(Sampler, NoFiniteLogitGivesTokenZero) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float minus_inf = -std::numeric_limits<float>::infinity();
  for (float temperature : {0.0f, 1.0f}) {
    EXPECT_EQ(draw(with_temperature(temperature), {nan, nan, nan}, 1)[0], 0);
    EXPECT_EQ(draw(with_temperature(temperature), {minus_inf, nan, minus_inf}, 1)[0], 0);
  }
}

TEST(Sampler, InfiniteLogitWins) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(draw(with_temperature(1.0f), {0.0f, inf, 3.0f, inf}, 1)[0], 1);
  // A tiny temperature overflows large logits to +inf; the result is still the argmax.
  EXPECT_EQ(draw(with_temperature(1e-38f), {1.0f, 2.0f, 1.5f}, 1)[0], 1);
}

TEST(Sampler, EmptyLogitsAreAnError) {
  Sampler sampler(with_temperature(1.0f));
  std::vector<float> empty;
  EXPECT_THROW(sampler.sample(empty, {}), Error);
}

}  // namespace
}  // namespace octet::engine
