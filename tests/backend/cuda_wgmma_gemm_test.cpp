// The wgmma FP8 GEMM (skinny_gemm_wgmma.cu) against the plain kernel launch_matmul_e4m3_simple:
// random E4M3 codes over the finite range, per-row and per-channel scales, 1–128 rows (token tiles
// of 8 to 128, partly filled), n not a multiple of the 128-row tile, k from one 128-byte chunk
// to 14336, tiles computed by one block and tiles shared by many, groups of weights of different n,
// outputs poisoned with NaN first. Tolerance: relative error (RMS) below 1e-3, the FP8 linears' bound
// elsewhere. Repeated runs must be bit-identical and leave the counters at zero. Skips without an
// sm_90 GPU (wgmma is sm_90a's).
#include "backend/device.h"
#include "support/random.h"
#include "support/require_gpu.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#if OCTET_HAVE_CUDA
#include "backend/cuda/kernels.h"
#include "support/device_vector.h"
#include "support/fp8_operands.h"

namespace octet::backend {
namespace {

using testing::DeviceVector;

class CudaWgmmaGemm : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    if (!cuda::wgmma_skinny_gemm_fits(64, 4096)) GTEST_SKIP() << "not an sm_90 GPU: no wgmma";
    rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }

  using Weight = testing::DeviceFp8Rows;
  Weight random_weight(int64_t n, int64_t k) { return testing::random_device_fp8_rows(rng_, n, k); }

  struct Input {
    DeviceVector<uint8_t> codes;
    DeviceVector<float> scales;
  };
  Input random_input(int64_t rows, int64_t k) {
    const auto codes = testing::random_e4m3_codes(rng_, static_cast<size_t>(rows * k));
    const auto scales = testing::random_fp8_scales(rng_, static_cast<size_t>(rows));
    return Input{DeviceVector<uint8_t>(codes.size(), &codes), DeviceVector<float>(scales.size(), &scales)};
  }

  // The product of x with the weights as one group, each member's output from outputs poisoned with
  // NaN (unwritten elements fail the test); the counters are checked back at zero.
  std::vector<std::vector<float>> wgmma(const Input& x, int64_t rows, const std::vector<const Weight*>& weights, int64_t k) {
    const auto product = testing::group_with_outputs(weights, rows);
    const cuda::WgmmaScratch need = cuda::wgmma_skinny_gemm_scratch(rows, product.group, k);
    DeviceVector<float> scratch(std::max<size_t>(1, need.floats));
    const std::vector<uint32_t> zeros(need.counters, 0u);
    DeviceVector<uint32_t> counters(need.counters, &zeros);
    cuda::launch_wgmma_skinny_gemm(x.codes.data, x.scales.data, rows, product.group, k, scratch.data, need.floats,
                                   counters.data, need.counters, nullptr);
    const std::string where = std::to_string(rows) + " rows, k " + std::to_string(k);
    auto results = testing::download_outputs(product, where);
    EXPECT_EQ(counters.host(), zeros) << "counters left set: " << where;
    return results;
  }

  static std::vector<double> reference(const Input& x, int64_t rows, const Weight& w, int64_t k) {
    return testing::plain_product(x.codes.data, x.scales.data, rows, w, k);
  }

  std::mt19937_64 rng_;
};

const int64_t kRows[] = {1, 3, 8, 9, 17, 32, 63, 64, 65, 100, 128};

std::string describe(int64_t rows, int64_t n, int64_t k) {
  return std::to_string(rows) + " rows × n " + std::to_string(n) + " × k " + std::to_string(k);
}

// Single weights: k of one chunk (128), 128 · 7, 4096 and 14336; n below, at and past a tile
// boundary; few tiles over many blocks (each tile in many parts) and many tiles (most whole).
TEST_F(CudaWgmmaGemm, MatchesThePlainKernel) {
  struct Shape { int64_t n, k; };
  for (Shape s : {Shape{1000, 128}, Shape{300, 896}, Shape{128, 256}, Shape{1030, 4096}, Shape{520, 14336},
                  Shape{28000, 4096}}) {
    const Weight w = random_weight(s.n, s.k);
    for (int64_t rows : kRows) {
      const Input x = random_input(rows, s.k);
      const auto got = wgmma(x, rows, {&w}, s.k);
      EXPECT_LT(testing::relative_error(got[0], reference(x, rows, w, s.k)), 1e-3) << describe(rows, s.n, s.k);
    }
  }
}

// q/k/v-like groups of three members of different n (the last tile of each member partial), each
// member against its own plain product.
TEST_F(CudaWgmmaGemm, GroupsOfThreeWeightsMatchThePlainKernel) {
  for (int64_t k : {int64_t{4096}, int64_t{128 * 9}}) {
    const Weight a = random_weight(1000, k), b = random_weight(136, k), c = random_weight(384, k);
    for (int64_t rows : kRows) {
      const Input x = random_input(rows, k);
      const auto got = wgmma(x, rows, {&a, &b, &c}, k);
      const Weight* members[] = {&a, &b, &c};
      for (int i = 0; i < 3; ++i)
        EXPECT_LT(testing::relative_error(got[i], reference(x, rows, *members[i], k)), 1e-3)
            << "member " << i << ", " << describe(rows, members[i]->n, k);
    }
  }
}

// The same inputs twice give the same bits, whichever block finishes a shared tile last.
TEST_F(CudaWgmmaGemm, RepeatedRunsAreBitIdentical) {
  struct Shape { int64_t rows, n, k; };
  for (Shape s : {Shape{64, 1030, 4096}, Shape{33, 520, 14336}, Shape{128, 28000, 1024}}) {
    const Weight w = random_weight(s.n, s.k);
    const Input x = random_input(s.rows, s.k);
    const auto first = wgmma(x, s.rows, {&w}, s.k);
    const auto second = wgmma(x, s.rows, {&w}, s.k);
    ASSERT_EQ(first[0].size(), second[0].size());
    EXPECT_EQ(std::memcmp(first[0].data(), second[0].data(), first[0].size() * sizeof(float)), 0)
        << "two runs differ: " << describe(s.rows, s.n, s.k);
  }
}

// Shapes it cannot run are refused, not computed wrongly: more than 128 rows, k not a multiple of
// 128, too little scratch.
TEST_F(CudaWgmmaGemm, RefusesShapesItCannotRun) {
  EXPECT_TRUE(cuda::wgmma_skinny_gemm_fits(1, 128));
  EXPECT_TRUE(cuda::wgmma_skinny_gemm_fits(128, 14336));
  EXPECT_FALSE(cuda::wgmma_skinny_gemm_fits(129, 4096));
  EXPECT_FALSE(cuda::wgmma_skinny_gemm_fits(64, 192));
  EXPECT_FALSE(cuda::wgmma_skinny_gemm_fits(64, 64));
  EXPECT_FALSE(cuda::wgmma_skinny_gemm_fits(0, 4096));
  const Weight w = random_weight(256, 4096);
  DeviceVector<uint8_t> x(static_cast<size_t>(129 * 4096));
  DeviceVector<float> row_scales(129), y(static_cast<size_t>(129 * 256)), scratch(1);
  DeviceVector<uint32_t> counters(1);
  const cuda::GemvGroup group = testing::one_weight_group(w, y.data);
  EXPECT_THROW(cuda::launch_wgmma_skinny_gemm(x.data, row_scales.data, 129, group, 4096, scratch.data, 1, counters.data, 1, nullptr),
               std::exception);
  EXPECT_THROW(cuda::launch_wgmma_skinny_gemm(x.data, row_scales.data, 64, group, 192, scratch.data, 1, counters.data, 1, nullptr),
               std::exception);
  const cuda::WgmmaScratch need = cuda::wgmma_skinny_gemm_scratch(64, group, 4096);
  ASSERT_GT(need.floats, 1u);  // 2 tiles over many blocks: shared tiles
  EXPECT_THROW(cuda::launch_wgmma_skinny_gemm(x.data, row_scales.data, 64, group, 4096, scratch.data, 1, counters.data, 1, nullptr),
               std::exception);
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
