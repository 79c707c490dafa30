// The narrow-tile wgmma FP8 GEMM (skinny_gemm_wgmma_narrow.cu) against the plain kernel
// launch_matmul_e4m3_simple: random E4M3 codes over the finite range, per-row and per-channel scales,
// 1–64 rows (the MMA's 64 partly filled), n not a multiple of any tile, k from one 128-byte chunk to
// 14336, one tile a block and several in turn (n past 132 · 256), clusters of 1, 2 and 4 blocks
// sharing the tokens' copies, groups of weights of different n, outputs poisoned with NaN first.
// Tolerance: relative error (RMS) below 1e-3, the FP8 linears' bound elsewhere. A row's outputs
// must be the same bits whatever the batch and cluster, and runs repeat bit for bit. Skips without
// an sm_90 GPU (wgmma is sm_90a's).
#include "backend/device.h"
#include "support/random.h"
#include "support/require_gpu.h"
#include "support/scoped_environment.h"

#include <gtest/gtest.h>

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

class CudaWgmmaNarrowGemm : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    if (!cuda::wgmma_narrow_gemm_fits(64, 4096)) GTEST_SKIP() << "not an sm_90 GPU: no wgmma";
    rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }

  using Weight = testing::DeviceFp8Rows;
  Weight random_weight(int64_t n, int64_t k) { return testing::random_device_fp8_rows(rng_, n, k); }

  // Host values kept beside their device copies (first_rows cuts a batch's leading rows from them).
  struct Input {
    Input(std::vector<uint8_t> c, std::vector<float> s)
        : host_codes(std::move(c)), host_scales(std::move(s)), codes(host_codes.size(), &host_codes),
          scales(host_scales.size(), &host_scales) {}
    std::vector<uint8_t> host_codes;
    std::vector<float> host_scales;
    DeviceVector<uint8_t> codes;
    DeviceVector<float> scales;
  };
  Input random_input(int64_t rows, int64_t k) {
    auto codes = testing::random_e4m3_codes(rng_, static_cast<size_t>(rows * k));
    return Input(std::move(codes), testing::random_fp8_scales(rng_, static_cast<size_t>(rows)));
  }
  // The first `rows` rows of x as an input of their own.
  static Input first_rows(const Input& x, int64_t rows, int64_t k) {
    return Input(std::vector<uint8_t>(x.host_codes.begin(), x.host_codes.begin() + rows * k),
                 std::vector<float>(x.host_scales.begin(), x.host_scales.begin() + rows));
  }

  // The product of x with the weights as one group, each member's output from outputs poisoned with NaN.
  std::vector<std::vector<float>> narrow(const Input& x, int64_t rows, const std::vector<const Weight*>& weights, int64_t k) {
    const auto product = testing::group_with_outputs(weights, rows);
    cuda::launch_wgmma_narrow_gemm(x.codes.data, x.scales.data, rows, product.group, k, nullptr);
    return testing::download_outputs(product, std::to_string(rows) + " rows, k " + std::to_string(k));
  }

  static std::vector<double> reference(const Input& x, int64_t rows, const Weight& w, int64_t k) {
    return testing::plain_product(x.codes.data, x.scales.data, rows, w, k);
  }

  std::mt19937_64 rng_;
};

const int64_t kRows[] = {1, 3, 8, 9, 16, 17, 32, 33, 63, 64};
const char* const kClusters[] = {"1", "2", "4"};
const char* const kStageChunks[] = {"1", "4"};  // OCTET_CUDA_WGMMA_STAGE_CHUNKS

std::string describe(int64_t rows, int64_t n, int64_t k, const char* cluster) {
  return std::to_string(rows) + " rows × n " + std::to_string(n) + " × k " + std::to_string(k) + ", clusters of " + cluster;
}

// Single weights: k of one chunk (128), 128 · 7, 4096 and 14336; n that give tiles of 16 to 256 rows,
// the last one partial; 40000 rows: 157 tiles of 256 over 132 blocks, several a block.
TEST_F(CudaWgmmaNarrowGemm, MatchesThePlainKernel) {
  struct Shape { int64_t n, k; };
  for (Shape s : {Shape{1000, 128}, Shape{300, 896}, Shape{4100, 4096}, Shape{520, 14336}, Shape{28000, 1024},
                  Shape{40000, 256}}) {
    const Weight w = random_weight(s.n, s.k);
    for (const char* chunks : kStageChunks) {
      testing::ScopedEnvironment stage("OCTET_CUDA_WGMMA_STAGE_CHUNKS", chunks);
      for (const char* cluster : kClusters) {
        testing::ScopedEnvironment size("OCTET_CUDA_WGMMA_CLUSTER", cluster);
        for (int64_t rows : kRows) {
          const Input x = random_input(rows, s.k);
          const auto got = narrow(x, rows, {&w}, s.k);
          EXPECT_LT(testing::relative_error(got[0], reference(x, rows, w, s.k)), 1e-3)
              << describe(rows, s.n, s.k, cluster) << ", at most " << chunks << " chunks a stage";
        }
      }
    }
  }
}

// q/k/v-like groups of three members of different n (the last tile of each member partial), each
// member against its own plain product.
TEST_F(CudaWgmmaNarrowGemm, GroupsOfThreeWeightsMatchThePlainKernel) {
  for (int64_t k : {int64_t{4096}, int64_t{128 * 9}}) {
    const Weight a = random_weight(4096, k), b = random_weight(136, k), c = random_weight(1000, k);
    const Weight* members[] = {&a, &b, &c};
    for (const char* cluster : kClusters) {
      testing::ScopedEnvironment size("OCTET_CUDA_WGMMA_CLUSTER", cluster);
      for (int64_t rows : kRows) {
        const Input x = random_input(rows, k);
        const auto got = narrow(x, rows, {&a, &b, &c}, k);
        for (int i = 0; i < 3; ++i)
          EXPECT_LT(testing::relative_error(got[i], reference(x, rows, *members[i], k)), 1e-3)
              << "member " << i << ", " << describe(rows, members[i]->n, k, cluster);
      }
    }
  }
}

// Each output is one block's sum in one order: a row's outputs are the same bits alone, in a batch
// of 17 or 64, in clusters of any size, with stages of one chunk of k or four, and in a second run.
TEST_F(CudaWgmmaNarrowGemm, ARowsBitsDoNotDependOnItsBatchOrCluster) {
  struct Shape { int64_t n, k; };
  for (Shape s : {Shape{4100, 4096}, Shape{520, 14336}, Shape{40000, 256}}) {
    const Weight w = random_weight(s.n, s.k);
    const Input batch = random_input(64, s.k);
    const Input alone = first_rows(batch, 1, s.k), seventeen = first_rows(batch, 17, s.k);
    const auto want = narrow(alone, 1, {&w}, s.k)[0];
    for (const char* chunks : kStageChunks) {
      testing::ScopedEnvironment stage("OCTET_CUDA_WGMMA_STAGE_CHUNKS", chunks);
      for (const char* cluster : kClusters) {
        testing::ScopedEnvironment size("OCTET_CUDA_WGMMA_CLUSTER", cluster);
        for (int repeat = 0; repeat < 2; ++repeat) {
          for (const Input* x : {&seventeen, &batch}) {
            const int64_t rows = x == &batch ? 64 : 17;
            const auto got = narrow(*x, rows, {&w}, s.k)[0];
            EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0)
                << "row 0 differs from its product alone: " << describe(rows, s.n, s.k, cluster) << ", at most "
                << chunks << " chunks a stage, run " << repeat + 1;
          }
        }
      }
    }
  }
}

// The plan: the narrowest tiles that put the launch in one tile a block (on the Llama 3 shapes and
// odd ones), in whole clusters (or none where clusters do not fit), several 256-row tiles a block
// only past what one wave holds.
TEST_F(CudaWgmmaNarrowGemm, PlansOneTileABlockWithTheNarrowestTiles) {
  int device = 0, sms = 0;
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), cudaSuccess);
  const std::vector<std::vector<int64_t>> groups = {{4096, 1024, 1024}, {4096}, {14336, 14336}, {8192, 1024, 1024},
                                                    {8192}, {28672, 28672}, {136}, {1, 7, 300}, {60000}};
  for (const auto& members : groups) {
    cuda::GemvGroup group;
    group.count = static_cast<int>(members.size());
    int64_t total_rows = 0;
    for (int i = 0; i < group.count; ++i) {
      group.n[i] = members[static_cast<size_t>(i)];
      total_rows += group.n[i];
    }
    for (int64_t rows : {int64_t{1}, int64_t{64}}) {
      const cuda::WgmmaNarrowPlan plan = cuda::wgmma_narrow_gemm_plan(rows, group, 4096);
      const std::string what = std::to_string(rows) + " rows, " + std::to_string(total_rows) + " weight rows";
      int64_t tiles = 0;
      for (int i = 0; i < group.count; ++i) tiles += (group.n[i] + 2 * plan.half - 1) / (2 * plan.half);
      EXPECT_EQ(plan.tiles, tiles) << what;
      EXPECT_TRUE(plan.cluster == 1 || (rows > 16 && plan.cluster == 2)) << what << ": clusters of " << plan.cluster;
      EXPECT_EQ(plan.blocks % plan.cluster, 0) << what;
      EXPECT_LE(plan.blocks, sms) << what;
      if (plan.blocks >= plan.tiles) {
        EXPECT_LT(plan.blocks - plan.tiles, plan.cluster) << what;  // only a cluster's padding
        if (plan.half > 8 && rows == 1) {  // without clusters: the next narrower instance would not have fit
          const int narrower = plan.half <= 64 ? plan.half - 8 : plan.half - 16;
          int64_t more = 0;
          for (int i = 0; i < group.count; ++i) more += (group.n[i] + 2 * narrower - 1) / (2 * narrower);
          EXPECT_GT(more, sms) << what << ": tiles of " << 2 * narrower << " rows would fit";
        }
      } else {
        EXPECT_EQ(plan.half, 128) << what;  // several tiles a block: the widest
        EXPECT_EQ(plan.cluster, 1) << what;
        EXPECT_EQ(plan.blocks, sms) << what;
        EXPECT_GT(plan.tiles, sms) << what;
      }
    }
  }
}

// Shapes and settings it cannot run are refused, not computed wrongly.
TEST_F(CudaWgmmaNarrowGemm, RefusesShapesAndSettingsItCannotRun) {
  EXPECT_TRUE(cuda::wgmma_narrow_gemm_fits(1, 128));
  EXPECT_TRUE(cuda::wgmma_narrow_gemm_fits(64, 14336));
  EXPECT_FALSE(cuda::wgmma_narrow_gemm_fits(65, 4096));
  EXPECT_FALSE(cuda::wgmma_narrow_gemm_fits(64, 192));
  EXPECT_FALSE(cuda::wgmma_narrow_gemm_fits(0, 4096));
  const Weight w = random_weight(256, 4096);
  DeviceVector<uint8_t> x(static_cast<size_t>(65 * 4096));
  DeviceVector<float> row_scales(65), y(static_cast<size_t>(65 * 256));
  const cuda::GemvGroup group = testing::one_weight_group(w, y.data);
  EXPECT_THROW(cuda::launch_wgmma_narrow_gemm(x.data, row_scales.data, 65, group, 4096, nullptr), std::exception);
  EXPECT_THROW(cuda::launch_wgmma_narrow_gemm(x.data, row_scales.data, 64, group, 192, nullptr), std::exception);
  for (const char* bad : {"3", "8", "0", "two"}) {
    testing::ScopedEnvironment size("OCTET_CUDA_WGMMA_CLUSTER", bad);
    try {
      cuda::launch_wgmma_narrow_gemm(x.data, row_scales.data, 64, group, 4096, nullptr);
      ADD_FAILURE() << "OCTET_CUDA_WGMMA_CLUSTER=" << bad << " was accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("OCTET_CUDA_WGMMA_CLUSTER"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
