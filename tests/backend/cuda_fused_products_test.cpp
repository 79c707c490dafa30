// Backend::linear_swiglu and Backend::linear_add_rmsnorm on the CUDA backend, which for 17–128 rows
// feed the unscaled cuBLASLt product straight into the SwiGLU / norm kernels (the scales applied as
// they load it) instead of a scaling pass first: against the same ops on a backend made with
// OCTET_CUDA_FUSED_PRODUCTS=0 (the pass, then the plain kernel), which must give the same bits, and
// against the CPU backend (relative error 1e-3, as every FP8 linear here), at every row count that
// takes another path (GEMV up to 16 rows, epilogue-scaled GEMMs above 128), with widths that fit the
// fused kernels and ones that fall back (not multiples of 4). Outputs poisoned first. Skips, saying
// so, where no GPU can be used.
#include "backend/backend.h"
#include "backend/device.h"
#include "support/backend_rows.h"
#include "support/random.h"
#include "support/require_gpu.h"
#include "support/scoped_environment.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#if OCTET_HAVE_CUDA

namespace octet::backend {
namespace {

constexpr int64_t kRowCounts[] = {1, 16, 17, 64, 100, 128, 129, 300};

size_t bit_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  size_t count = 0;
  for (size_t i = 0; i < a.size(); ++i) count += std::memcmp(&a[i], &b[i], sizeof(float)) != 0 ? 1 : 0;
  return count;
}

using testing::any_nan;
using testing::relative_error;

// The same FP8 weights and norm on one backend; gate and up fused as the model fuses them.
struct Weights {
  std::unique_ptr<LinearWeight> gate, up, down;
  std::unique_ptr<VectorWeight> norm;
};

class CudaFusedProducts : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    cpu_ = make_cpu_backend(2);
    fused_ = make_cuda_backend(0);
    const testing::ScopedEnvironment pass_first("OCTET_CUDA_FUSED_PRODUCTS", "0");
    unfused_ = make_cuda_backend(0);
  }

  Weights make(Backend& on, int64_t hidden, int64_t ffn, uint64_t seed) {
    std::mt19937_64 rng(seed);
    const auto weight = [&](int64_t out, int64_t in) {
      const auto codes = testing::random_e4m3_codes(rng, static_cast<size_t>(out * in));
      const auto scales = testing::random_fp8_scales(rng, static_cast<size_t>(out));
      return on.make_fp8_linear(codes.data(), scales.data(), out, in, LinearSpec{LinearFormat::fp8, 0.0f});
    };
    Weights w;
    w.gate = weight(ffn, hidden);
    w.up = weight(ffn, hidden);
    w.down = weight(hidden, ffn);
    auto norm = testing::random_normal(rng, static_cast<size_t>(hidden), 0.2f);
    for (auto& v : norm) v += 1.0f;
    w.norm = on.make_vector(norm.data(), hidden);
    LinearWeight* members[] = {w.gate.get(), w.up.get()};
    on.fuse_linears(members);
    return w;
  }

  std::unique_ptr<Activations> poisoned(Backend& on, int64_t rows, int64_t cols) {
    auto a = on.make_activations(rows, cols);
    testing::upload_rows(on, std::vector<float>(static_cast<size_t>(rows * cols), std::numeric_limits<float>::quiet_NaN()), *a);
    return a;
  }

  std::vector<float> swiglu_on(Backend& on, const Weights& w, const std::vector<float>& x, int64_t rows, int64_t hidden,
                               int64_t ffn) {
    auto input = on.make_activations(rows, hidden);
    testing::upload_rows(on, x, *input);
    auto gate = poisoned(on, rows, ffn), up = poisoned(on, rows, ffn), out = poisoned(on, rows, ffn);
    on.linear_swiglu(*input, *w.gate, *w.up, *gate, *up, *out);
    return testing::download_rows(on, *out);
  }

  // The residual after the op, then the normed output.
  std::pair<std::vector<float>, std::vector<float>> add_rmsnorm_on(Backend& on, const Weights& w, const std::vector<float>& x,
                                                                   const std::vector<float>& residual, int64_t rows,
                                                                   int64_t hidden, int64_t ffn) {
    auto input = on.make_activations(rows, ffn);
    testing::upload_rows(on, x, *input);
    auto r = on.make_activations(rows, hidden);
    testing::upload_rows(on, residual, *r);
    auto proj = poisoned(on, rows, hidden), out = poisoned(on, rows, hidden);
    on.linear_add_rmsnorm(*input, *w.down, *proj, *r, *w.norm, 1e-5f, *out);
    return {testing::download_rows(on, *r), testing::download_rows(on, *out)};
  }

  std::unique_ptr<Backend> cpu_, fused_, unfused_;
  std::mt19937_64 rng_;
};

TEST_F(CudaFusedProducts, SameBitsAsThePassThenTheKernelAndCloseToTheCpu) {
  struct Shape {
    int64_t hidden, ffn;
  };
  // 1024 × 2816: both fused kernels fit; 1024 × 1001: SwiGLU's rows are not float4s (the scaled split,
  // then the plain kernel); 1000 × 1536: the norm's rows are not 64-aligned weights (fused, padded).
  for (const Shape shape : {Shape{1024, 2816}, Shape{1024, 1001}, Shape{1000, 1536}}) {
    const uint64_t seed = rng_();
    const Weights on_cpu = make(*cpu_, shape.hidden, shape.ffn, seed);
    const Weights on_fused = make(*fused_, shape.hidden, shape.ffn, seed);
    const Weights on_unfused = make(*unfused_, shape.hidden, shape.ffn, seed);
    for (int64_t rows : kRowCounts) {
      const std::string where = std::to_string(rows) + " rows, hidden " + std::to_string(shape.hidden) + ", ffn " +
                                std::to_string(shape.ffn);
      const auto x = testing::random_normal(rng_, static_cast<size_t>(rows * shape.hidden));
      const auto got = swiglu_on(*fused_, on_fused, x, rows, shape.hidden, shape.ffn);
      ASSERT_FALSE(any_nan(got)) << "linear_swiglu left outputs unwritten, " << where;
      EXPECT_EQ(bit_mismatches(got, swiglu_on(*unfused_, on_unfused, x, rows, shape.hidden, shape.ffn)), 0u)
          << "linear_swiglu against OCTET_CUDA_FUSED_PRODUCTS=0, " << where;
      EXPECT_LT(relative_error(got, swiglu_on(*cpu_, on_cpu, x, rows, shape.hidden, shape.ffn)), 1e-3)
          << "linear_swiglu against the CPU, " << where;

      const auto act = testing::random_normal(rng_, static_cast<size_t>(rows * shape.ffn));
      const auto residual = testing::random_normal(rng_, static_cast<size_t>(rows * shape.hidden), 4.0f);
      const auto [r, normed] = add_rmsnorm_on(*fused_, on_fused, act, residual, rows, shape.hidden, shape.ffn);
      const auto [r0, normed0] = add_rmsnorm_on(*unfused_, on_unfused, act, residual, rows, shape.hidden, shape.ffn);
      const auto [r_cpu, normed_cpu] = add_rmsnorm_on(*cpu_, on_cpu, act, residual, rows, shape.hidden, shape.ffn);
      ASSERT_FALSE(any_nan(normed)) << "linear_add_rmsnorm left outputs unwritten, " << where;
      EXPECT_EQ(bit_mismatches(r, r0), 0u) << "residual against OCTET_CUDA_FUSED_PRODUCTS=0, " << where;
      EXPECT_EQ(bit_mismatches(normed, normed0), 0u) << "norm against OCTET_CUDA_FUSED_PRODUCTS=0, " << where;
      EXPECT_LT(relative_error(r, r_cpu), 1e-3) << "residual against the CPU, " << where;
      EXPECT_LT(relative_error(normed, normed_cpu), 1e-3) << "norm against the CPU, " << where;
    }
  }
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
