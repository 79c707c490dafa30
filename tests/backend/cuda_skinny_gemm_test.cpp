// The skinny FP8 GEMM (skinny_gemm_fp8.cu) against the plain kernel launch_matmul_e4m3_simple:
// random E4M3 codes over the finite range (NaN codes excluded), per-row and per-channel scales,
// 17–128 rows (token tiles of 8 partly filled), n not a multiple of the 128-row tile, k from one
// 64-byte chunk to 14336, split and unsplit k, groups of weights of different n, outputs poisoned
// with NaN first. Tolerance: relative error (RMS) below 1e-3, the FP8 linears' bound elsewhere
// (tensor cores accumulate narrower than float32). Repeated runs must be bit-identical (the split
// sums are added in a fixed order). Skips without a GPU.
#include "backend/device.h"
#include "support/random.h"
#include "support/require_gpu.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#if OCTET_HAVE_CUDA
#include "backend/cuda/kernels.h"
#include "support/device_vector.h"
#include "support/fp8_operands.h"

namespace octet::backend {
namespace {

using testing::DeviceVector;

class CudaSkinnyGemm : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }

  std::vector<uint8_t> random_codes(size_t count) { return testing::random_e4m3_codes(rng_, count); }
  std::vector<float> random_scales(size_t count) { return testing::random_fp8_scales(rng_, count); }

  // One weight of the product, on the device.
  using Weight = testing::DeviceFp8Rows;
  Weight random_weight(int64_t n, int64_t k) { return testing::random_device_fp8_rows(rng_, n, k); }

  // The skinny GEMM of x (rows × k codes) with the weights as one group: each member's output,
  // from outputs poisoned with NaN; also checks that nothing was left unwritten.
  std::vector<std::vector<float>> skinny(const DeviceVector<uint8_t>& x, const DeviceVector<float>& row_scales,
                                         int64_t rows, const std::vector<const Weight*>& weights, int64_t k) {
    const auto product = testing::group_with_outputs(weights, rows);
    const size_t scratch_floats = cuda::skinny_gemm_e4m3_scratch_floats(rows, product.group, k);
    DeviceVector<float> scratch(std::max<size_t>(1, scratch_floats));
    cuda::launch_skinny_gemm_e4m3_group(x.data, row_scales.data, rows, product.group, k, scratch.data, scratch_floats,
                                        nullptr);
    return testing::download_outputs(product, std::to_string(rows) + " rows, k " + std::to_string(k));
  }

  std::vector<double> reference(const DeviceVector<uint8_t>& x, const DeviceVector<float>& row_scales, int64_t rows,
                                const Weight& w, int64_t k) {
    DeviceVector<float> want(static_cast<size_t>(rows * w.n));
    cuda::launch_matmul_e4m3_simple(x.data, row_scales.data, rows, w.codes->data, w.scales->data, w.n, k, want.data, nullptr);
    const auto values = want.host();
    return std::vector<double>(values.begin(), values.end());
  }

  std::mt19937_64 rng_;
};

const int64_t kRows[] = {17, 31, 32, 33, 64, 100, 128};

std::string describe(int64_t rows, int64_t n, int64_t k, int splits) {
  return std::to_string(rows) + " rows × n " + std::to_string(n) + " × k " + std::to_string(k) + ", " +
         std::to_string(splits) + " split(s)";
}

// Single weights: k of one chunk (64), 64 · odd, 4096 and 14336; n below, at and past a tile
// boundary; one shape with enough tiles to run unsplit on a large GPU (the epilogue applies the
// scales) next to the split ones (the reduce kernel does).
TEST_F(CudaSkinnyGemm, MatchesThePlainKernel) {
  struct Shape { int64_t n, k; };
  bool saw_split = false, saw_unsplit = false;
  for (Shape s : {Shape{1000, 64}, Shape{300, 832}, Shape{128, 192}, Shape{1030, 4096}, Shape{520, 14336},
                  Shape{28000, 4096}}) {
    const Weight w = random_weight(s.n, s.k);
    for (int64_t rows : kRows) {
      const auto x_codes = random_codes(static_cast<size_t>(rows * s.k));
      const auto x_scales = random_scales(static_cast<size_t>(rows));
      DeviceVector<uint8_t> x(x_codes.size(), &x_codes);
      DeviceVector<float> row_scales(x_scales.size(), &x_scales);
      cuda::GemvGroup group;
      group.count = 1;
      group.n[0] = s.n;
      const int splits = cuda::skinny_gemm_e4m3_splits(rows, group, s.k);
      (splits > 1 ? saw_split : saw_unsplit) = true;
      const auto got = skinny(x, row_scales, rows, {&w}, s.k);
      EXPECT_LT(testing::relative_error(got[0], reference(x, row_scales, rows, w, s.k)), 1e-3)
          << describe(rows, s.n, s.k, splits);
    }
  }
  EXPECT_TRUE(saw_split) << "no shape was split over k";
  EXPECT_TRUE(saw_unsplit) << "every shape was split over k";
}

// q/k/v-like groups of three members of different n (tiles dealt out unevenly, the last tile of
// each member partial), each member against its own plain product.
TEST_F(CudaSkinnyGemm, GroupsOfThreeWeightsMatchThePlainKernel) {
  for (int64_t k : {int64_t{4096}, int64_t{64 * 9}}) {
    const Weight a = random_weight(1000, k), b = random_weight(136, k), c = random_weight(384, k);
    for (int64_t rows : kRows) {
      const auto x_codes = random_codes(static_cast<size_t>(rows * k));
      const auto x_scales = random_scales(static_cast<size_t>(rows));
      DeviceVector<uint8_t> x(x_codes.size(), &x_codes);
      DeviceVector<float> row_scales(x_scales.size(), &x_scales);
      const auto got = skinny(x, row_scales, rows, {&a, &b, &c}, k);
      const Weight* members[] = {&a, &b, &c};
      for (int i = 0; i < 3; ++i)
        EXPECT_LT(testing::relative_error(got[i], reference(x, row_scales, rows, *members[i], k)), 1e-3)
            << "member " << i << ", " << describe(rows, members[i]->n, k, 0);
    }
  }
}

// The same inputs twice give the same bits, split (few tiles) or not.
TEST_F(CudaSkinnyGemm, RepeatedRunsAreBitIdentical) {
  struct Shape { int64_t rows, n, k; };
  for (Shape s : {Shape{64, 1030, 4096}, Shape{33, 520, 14336}, Shape{128, 28000, 1024}}) {
    const Weight w = random_weight(s.n, s.k);
    const auto x_codes = random_codes(static_cast<size_t>(s.rows * s.k));
    const auto x_scales = random_scales(static_cast<size_t>(s.rows));
    DeviceVector<uint8_t> x(x_codes.size(), &x_codes);
    DeviceVector<float> row_scales(x_scales.size(), &x_scales);
    const auto first = skinny(x, row_scales, s.rows, {&w}, s.k);
    const auto second = skinny(x, row_scales, s.rows, {&w}, s.k);
    ASSERT_EQ(first[0].size(), second[0].size());
    EXPECT_EQ(std::memcmp(first[0].data(), second[0].data(), first[0].size() * sizeof(float)), 0)
        << "two runs differ: " << describe(s.rows, s.n, s.k, 0);
  }
}

// Shapes it cannot run are refused, not computed wrongly: more than 128 rows, k not a multiple of
// 64, too little scratch for the splits.
TEST_F(CudaSkinnyGemm, RefusesShapesItCannotRun) {
  EXPECT_TRUE(cuda::skinny_gemm_e4m3_fits(17, 64));
  EXPECT_TRUE(cuda::skinny_gemm_e4m3_fits(128, 14336));
  EXPECT_FALSE(cuda::skinny_gemm_e4m3_fits(129, 4096));
  EXPECT_FALSE(cuda::skinny_gemm_e4m3_fits(64, 96));
  EXPECT_FALSE(cuda::skinny_gemm_e4m3_fits(0, 4096));
  const Weight w = random_weight(256, 4096);
  DeviceVector<uint8_t> x(static_cast<size_t>(129 * 4096));
  DeviceVector<float> row_scales(129), y(static_cast<size_t>(129 * 256)), scratch(1);
  const cuda::GemvGroup group = testing::one_weight_group(w, y.data);
  EXPECT_THROW(cuda::launch_skinny_gemm_e4m3_group(x.data, row_scales.data, 129, group, 4096, scratch.data, 1, nullptr),
               std::exception);
  EXPECT_THROW(cuda::launch_skinny_gemm_e4m3_group(x.data, row_scales.data, 64, group, 96, scratch.data, 1, nullptr),
               std::exception);
  ASSERT_GT(cuda::skinny_gemm_e4m3_splits(64, group, 4096), 1);  // 2 tiles: split on any GPU with SMs to fill
  EXPECT_THROW(cuda::launch_skinny_gemm_e4m3_group(x.data, row_scales.data, 64, group, 4096, scratch.data, 1, nullptr),
               std::exception);
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
