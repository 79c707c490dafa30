// A row's result must not depend on the rows batched with it: the continuous-batching scheduler
// relies on it to give each request the tokens it gets alone. Exact equality, random inputs.
#include "backend/backend.h"
#include "backend/cpu/dot_kernels.h"
#include "support/random.h"

#include <gtest/gtest.h>

namespace octet::backend {
namespace {

TEST(BatchInvariance, DotRowsGivesEachRowWhatItGivesAlone) {
  std::mt19937_64 rng(testing::test_seed("BatchInvariance.DotRowsGivesEachRowWhatItGivesAlone"));
  for (int64_t count : {1, 7, 16, 31, 32, 48, 100, 576, 1536}) {
    for (int64_t tokens : {1, 3, 4, 5, 8, 9}) {
      const auto x = testing::random_normal(rng, static_cast<size_t>(tokens * count));
      const auto w = testing::random_normal(rng, static_cast<size_t>(count));
      std::vector<float> batched(static_cast<size_t>(tokens));
      cpu::dot_rows(x.data(), count, tokens, w.data(), count, batched.data(), 1);
      for (int64_t t = 0; t < tokens; ++t) {
        float alone = 0;
        cpu::dot_rows(x.data() + t * count, count, 1, w.data(), count, &alone, 1);
        ASSERT_EQ(batched[static_cast<size_t>(t)], alone) << "count " << count << ", row " << t << " of " << tokens;
      }
    }
  }
}

TEST(BatchInvariance, LinearRowsMatchTheirSingleRowResultInEveryFormat) {
  std::mt19937_64 rng(testing::test_seed("BatchInvariance.LinearRowsMatchTheirSingleRowResultInEveryFormat"));
  auto backend = make_cpu_backend(2);
  const int64_t in = 200, out = 24, rows = 7;
  const auto weights = testing::random_normal(rng, static_cast<size_t>(out * in), 0.05f);
  const auto input = testing::random_normal(rng, static_cast<size_t>(rows * in));
  for (LinearFormat format : {LinearFormat::f32, LinearFormat::bf16, LinearFormat::fp8}) {
    auto w = backend->make_linear(weights.data(), out, in, LinearSpec{format, 0.0f});
    auto x = backend->make_activations(rows, in);
    auto y = backend->make_activations(rows, out);
    // Activations are filled through a one-row embedding table per row.
    auto table = backend->make_embedding(input.data(), rows, in, EmbeddingFormat::f32);
    std::vector<int32_t> ids(static_cast<size_t>(rows));
    for (int32_t i = 0; i < rows; ++i) ids[static_cast<size_t>(i)] = i;
    backend->embed(*table, ids, *x);
    backend->linear(*x, *w, *y);
    std::vector<int64_t> all(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) all[static_cast<size_t>(r)] = r;
    std::vector<float> batched(static_cast<size_t>(rows * out));
    backend->copy_rows_to_host(*y, all, batched.data());
    for (int32_t r = 0; r < rows; ++r) {
      auto x1 = backend->make_activations(1, in);
      auto y1 = backend->make_activations(1, out);
      const int32_t id = r;
      backend->embed(*table, std::span<const int32_t>(&id, 1), *x1);
      backend->linear(*x1, *w, *y1);
      std::vector<float> alone(static_cast<size_t>(out));
      const int64_t row0 = 0;
      backend->copy_rows_to_host(*y1, std::span<const int64_t>(&row0, 1), alone.data());
      for (int64_t o = 0; o < out; ++o)
        ASSERT_EQ(batched[static_cast<size_t>(r * out + o)], alone[static_cast<size_t>(o)])
            << "format " << static_cast<int>(format) << ", row " << r << ", output " << o;
    }
  }
}

}  // namespace
}  // namespace octet::backend
