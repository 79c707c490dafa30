// The CUDA sample_rows kernel against the CPU: greedy equals the argmax exactly on vocabulary-wide
// rows, filtered draws stay inside the kept set the reference computes, draws over a small vocabulary
// follow the exact probabilities, degenerate rows (all -inf, +inf, NaN) pick what the CPU picks, and
// a (seed, step) gives one token whatever the batch. Skips, saying so, where no GPU can be used.
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "backend/device.h"
#include "backend/sampling_reference.h"
#include "support/backend_rows.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace octet::backend {
namespace {

namespace ref = sampling_reference;

class CudaSampling : public ::testing::Test {
 protected:
  void SetUp() override {
    const CudaStatus status = probe_cuda();
    if (!status.available) GTEST_SKIP() << "no GPU: " << status.reason;
    cpu_ = make_cpu_backend(2);
    gpu_ = make_cuda_backend(0);
    rng_.seed(octet::testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }
  // Device logits holding values, uploaded through the backend's API (a float32 embedding gathered in order).
  std::unique_ptr<Activations> device_logits(int64_t rows, int64_t cols, const std::vector<float>& values) {
    auto a = gpu_->make_activations(rows, cols);
    octet::testing::upload_rows(*gpu_, values, *a);
    return a;
  }
  std::unique_ptr<Activations> host_logits(int64_t rows, int64_t cols, const std::vector<float>& values) {
    auto a = cpu_->make_activations(rows, cols);
    static_cast<cpu::CpuActivations&>(*a).data = values;
    return a;
  }
  // Poisoned outputs: an id the kernel did not write stays -1 and fails the checks.
  static std::vector<int32_t> sample(Backend& backend, const Activations& a, const std::vector<RowSampling>& settings) {
    std::vector<int64_t> rows(settings.size());
    for (size_t r = 0; r < rows.size(); ++r) rows[r] = static_cast<int64_t>(r);
    std::vector<int32_t> tokens(rows.size(), -1);
    backend.sample_rows(a, rows, settings, tokens);
    return tokens;
  }

  std::unique_ptr<Backend> cpu_, gpu_;
  std::mt19937_64 rng_;
};

constexpr int64_t kVocab = 128256;  // Llama 3

TEST_F(CudaSampling, GreedyEqualsCpuArgmaxOnFullRows) {
  const int64_t rows = 64;
  auto values = octet::testing::random_normal(rng_, static_cast<size_t>(rows * kVocab), 3.0f);
  // Every fourth row on a coarse grid (many ties for the maximum), one with NaNs and -inf.
  for (int64_t r = 0; r < rows; r += 4)
    for (int64_t i = 0; i < kVocab; ++i) values[r * kVocab + i] = std::round(values[r * kVocab + i]);
  for (int64_t i = 0; i < kVocab; i += 3) values[kVocab + i] = i % 2 ? -INFINITY : std::numeric_limits<float>::quiet_NaN();
  auto a = device_logits(rows, kVocab, values);
  const auto tokens = sample(*gpu_, *a, std::vector<RowSampling>(rows, RowSampling{0.0f, 0, 1.0f, 0.0f, rng_(), 0}));
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_EQ(tokens[r], ref::reference_argmax(std::span<const float>(values).subspan(r * kVocab, kVocab))) << "row " << r;
}

TEST_F(CudaSampling, FilteredDrawsStayInsideTheKeptSet) {
  const int64_t rows = 64;
  const auto values = octet::testing::random_normal(rng_, static_cast<size_t>(rows * kVocab), 2.5f);
  auto a = device_logits(rows, kVocab, values);
  const int32_t top_ks[] = {0, 1, 20, 50, 1000};
  const float top_ps[] = {1.0f, 0.5f, 0.9f, 0.95f};
  const float min_ps[] = {0.0f, 0.05f, 0.2f};
  const float temperatures[] = {0.6f, 1.0f, 1.5f};
  const uint64_t seed = rng_();
  for (int pass = 0; pass < 4; ++pass) {
    std::vector<RowSampling> settings;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t c = r + rows * pass;
      settings.push_back(RowSampling{temperatures[c % 3], top_ks[(c / 3) % 5], top_ps[(c / 15) % 4], min_ps[(c / 7) % 3],
                                     seed + static_cast<uint64_t>(r), static_cast<uint64_t>(pass)});
    }
    const auto tokens = sample(*gpu_, *a, settings);
    for (int64_t r = 0; r < rows; ++r) {
      const RowSampling& s = settings[r];
      ASSERT_GE(tokens[r], 0) << "row " << r << " unwritten";
      ASSERT_LT(tokens[r], kVocab) << "row " << r;
      // Cut boundaries within 1e-4 (relative) count as inside: the kernel sums in 2^-40 fixed point.
      const auto probability = ref::reference_probabilities(std::span<const float>(values).subspan(r * kVocab, kVocab), s, 1e-4);
      EXPECT_GT(probability[tokens[r]], 0.0) << "row " << r << ": token " << tokens[r] << " outside the kept set of temperature "
                                             << s.temperature << " top-k " << s.top_k << " top-p " << s.top_p << " min-p "
                                             << s.min_p;
    }
  }
}

TEST_F(CudaSampling, DrawsFollowTheProbabilities) {
  ref::expect_draws_follow_probabilities(
      rng_(), [&](int64_t rows, int64_t cols, const std::vector<float>& values) { return device_logits(rows, cols, values); },
      [&](const Activations& a, const std::vector<RowSampling>& settings) { return sample(*gpu_, a, settings); });
}

// Rows with nothing to draw from or with +inf pick the token the CPU sampler picks.
TEST_F(CudaSampling, DegenerateRowsMatchTheCpu) {
  const int64_t vocab = 3000;
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::vector<float>> cases;
  cases.push_back(std::vector<float>(vocab, -inf));
  cases.push_back(std::vector<float>(vocab, nan));
  auto with_inf = octet::testing::random_normal(rng_, vocab);
  with_inf[1234] = inf;
  with_inf[2345] = inf;
  cases.push_back(with_inf);
  auto one_finite = std::vector<float>(vocab, -inf);
  one_finite[2999] = 0.5f;
  cases.push_back(one_finite);
  std::vector<float> values;
  for (const auto& c : cases) values.insert(values.end(), c.begin(), c.end());
  const auto rows = static_cast<int64_t>(cases.size());
  auto g = device_logits(rows, vocab, values);
  auto c = host_logits(rows, vocab, values);
  for (const RowSampling s : {RowSampling{0.0f, 0, 1.0f, 0.0f, 1, 0}, RowSampling{1.0f, 40, 0.9f, 0.05f, 2, 5}}) {
    const std::vector<RowSampling> settings(rows, s);
    EXPECT_EQ(sample(*gpu_, *g, settings), sample(*cpu_, *c, settings)) << "temperature " << s.temperature;
  }
}

TEST_F(CudaSampling, SameSeedAndStepSameTokenWhateverTheBatch) {
  const auto row = octet::testing::random_normal(rng_, kVocab, 0.05f);
  std::vector<float> values;
  for (int copy = 0; copy < 5; ++copy) values.insert(values.end(), row.begin(), row.end());
  auto batch = device_logits(5, kVocab, values);
  const uint64_t seed = rng_();
  for (uint64_t step = 0; step < 16; ++step) {
    const RowSampling s{1.0f, 0, 0.95f, 0.0f, seed, step}, other{0.8f, 100, 1.0f, 0.0f, seed + 9, step};
    std::vector<int64_t> one{3};
    std::vector<RowSampling> alone_setting{s};
    std::vector<int32_t> alone(1, -1);
    gpu_->sample_rows(*batch, one, alone_setting, alone);
    const auto mixed = sample(*gpu_, *batch, {other, s, other, other, s});
    EXPECT_EQ(mixed[1], alone[0]) << "step " << step;
    EXPECT_EQ(mixed[4], alone[0]) << "step " << step;
  }
}

}  // namespace
}  // namespace octet::backend
