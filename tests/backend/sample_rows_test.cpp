// Backend::sample_rows on the CPU backend (the host implementation every backend inherits) against
// slow references: greedy is the argmax (lowest index on ties), top-k 1 is greedy, a (seed, step)
// always gives the same token wherever its row sits, and many draws follow the exact probabilities.
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "backend/sampling_reference.h"
#include "common/error.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>

namespace octet::backend {
namespace {

class SampleRows : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_cpu_backend(2);
    rng_.seed(octet::testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }
  std::unique_ptr<Activations> logits(int64_t rows, int64_t cols, const std::vector<float>& values) {
    auto a = backend_->make_activations(rows, cols);
    static_cast<cpu::CpuActivations&>(*a).data = values;
    return a;
  }
  // Values on a coarse grid so that rows have ties, and a few NaN and -inf.
  std::vector<float> tied_values(size_t count) {
    std::uniform_int_distribution<int> grid(-20, 20), special(0, 99);
    std::vector<float> v(count);
    for (float& x : v) {
      const int s = special(rng_);
      x = s == 0 ? std::numeric_limits<float>::quiet_NaN() : s == 1 ? -INFINITY : 0.25f * static_cast<float>(grid(rng_));
    }
    return v;
  }
  std::vector<int32_t> sample(const Activations& a, const std::vector<RowSampling>& settings) {
    std::vector<int64_t> rows(settings.size());
    for (size_t r = 0; r < rows.size(); ++r) rows[r] = static_cast<int64_t>(r);
    std::vector<int32_t> tokens(rows.size(), -1);
    backend_->sample_rows(a, rows, settings, tokens);
    return tokens;
  }

  std::unique_ptr<Backend> backend_;
  std::mt19937_64 rng_;
};

TEST_F(SampleRows, GreedyIsArgmaxLowestIndexOnTies) {
  const int64_t rows = 16, vocab = 1001;
  const auto values = tied_values(static_cast<size_t>(rows * vocab));
  auto a = logits(rows, vocab, values);
  const auto tokens = sample(*a, std::vector<RowSampling>(rows, RowSampling{0.0f, 0, 1.0f, 0.0f, rng_(), 3}));
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_EQ(tokens[r], sampling_reference::reference_argmax(std::span<const float>(values).subspan(r * vocab, vocab))) << "row " << r;
}

TEST_F(SampleRows, TopKOfOneIsGreedy) {
  const int64_t rows = 16, vocab = 1001;
  const auto values = tied_values(static_cast<size_t>(rows * vocab));
  auto a = logits(rows, vocab, values);
  std::vector<RowSampling> settings;
  for (int64_t r = 0; r < rows; ++r) settings.push_back(RowSampling{1.3f, 1, 1.0f, 0.0f, rng_(), static_cast<uint64_t>(r)});
  const auto tokens = sample(*a, settings);
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_EQ(tokens[r], sampling_reference::reference_argmax(std::span<const float>(values).subspan(r * vocab, vocab))) << "row " << r;
}

// The same logits row drawn with the same (seed, step) in different batches and positions gives the
// same token; other steps of the same seed give others (over 64 steps of a flat row, all equal has
// probability 1000^-63).
TEST_F(SampleRows, SameSeedAndStepSameTokenWhateverTheBatch) {
  const int64_t vocab = 1000;
  const auto row = octet::testing::random_normal(rng_, vocab, 0.01f);
  const uint64_t seed = rng_();
  std::vector<float> batch_values;
  for (int copy = 0; copy < 3; ++copy) batch_values.insert(batch_values.end(), row.begin(), row.end());
  auto alone = logits(1, vocab, row), batch = logits(3, vocab, batch_values);
  std::set<int32_t> distinct;
  for (uint64_t step = 0; step < 64; ++step) {
    const RowSampling s{1.0f, 0, 0.95f, 0.0f, seed, step};
    const RowSampling other{1.0f, 0, 1.0f, 0.0f, seed + 1, step + 7};
    const int32_t lone = sample(*alone, {s})[0];
    const auto mixed = sample(*batch, {other, s, s});
    EXPECT_EQ(mixed[1], lone) << "step " << step;
    EXPECT_EQ(mixed[2], lone) << "step " << step;
    distinct.insert(lone);
  }
  EXPECT_GT(distinct.size(), 1u);
}

TEST_F(SampleRows, DrawsFollowTheProbabilities) {
  sampling_reference::expect_draws_follow_probabilities(
      rng_(), [&](int64_t rows, int64_t cols, const std::vector<float>& values) { return logits(rows, cols, values); },
      [&](const Activations& a, const std::vector<RowSampling>& settings) { return sample(a, settings); });
}

TEST_F(SampleRows, RejectsMismatchedArguments) {
  auto a = logits(2, 4, std::vector<float>(8, 0.0f));
  std::vector<int64_t> rows{0, 2};
  std::vector<RowSampling> settings(2);
  std::vector<int32_t> tokens(2);
  EXPECT_THROW(backend_->sample_rows(*a, rows, settings, tokens), Error);
  rows = {0, 1};
  tokens.resize(1);
  EXPECT_THROW(backend_->sample_rows(*a, rows, settings, tokens), Error);
}

}  // namespace
}  // namespace octet::backend
