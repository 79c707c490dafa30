// plan_wgmma_narrow_tiles and plan_wgmma_narrow_stages, the narrow-tile wgmma GEMM's launch shape (host code: runs without a GPU
// wherever the CUDA component is built), on Llama 3's decode shapes and odd ones, with an H100's 132
// SMs and cluster capacities the GPCs may give (132 or 128 blocks in clusters of 2): the expected
// tiles worked out by hand from the row counts.
#include <gtest/gtest.h>

#if OCTET_HAVE_CUDA
#include "backend/cuda/wgmma_narrow_plan.h"

#include <string>
#include <vector>

namespace octet::backend {
namespace {

constexpr int kSms = 132;

cuda::WgmmaNarrowPlan plan(const std::vector<int64_t>& rows, int cluster, int cluster_capacity = kSms) {
  return cuda::plan_wgmma_narrow_tiles(rows.data(), static_cast<int>(rows.size()), cluster, kSms,
                                       [&](int, int) { return cluster_capacity; });
}

void expect_plan(const cuda::WgmmaNarrowPlan& got, int half, int tiles, int blocks, int cluster, const std::string& what) {
  EXPECT_EQ(got.half, half) << what;
  EXPECT_EQ(got.tiles, tiles) << what;
  EXPECT_EQ(got.blocks, blocks) << what;
  EXPECT_EQ(got.cluster, cluster) << what;
}

TEST(CudaWgmmaNarrowPlan, Llama3DecodeShapesGetOneNarrowTileABlock) {
  // 8B q/k/v: 48-row tiles, 86 + 22 + 22 (32-row tiles would be 192).
  expect_plan(plan({4096, 1024, 1024}, 1), 24, 130, 130, 1, "8B q/k/v");
  expect_plan(plan({4096, 1024, 1024}, 2), 24, 130, 130, 2, "8B q/k/v in pairs");
  // 8B o and down: 32-row tiles; gate/up: 224-row tiles, 64 a member (192-row tiles would be 150).
  expect_plan(plan({4096}, 1), 16, 128, 128, 1, "8B o");
  expect_plan(plan({14336, 14336}, 2), 112, 128, 128, 2, "8B gate/up");
  // 70B q/k/v: 80-row tiles, 103 + 13 + 13; o and down 64-row tiles; gate/up 2 × 128 tiles of 256, two a block.
  expect_plan(plan({8192, 1024, 1024}, 1), 40, 129, 129, 1, "70B q/k/v");
  expect_plan(plan({8192}, 4), 32, 128, 128, 4, "70B o in fours");
  expect_plan(plan({28672, 28672}, 2), 128, 224, 132, 1, "70B gate/up");
}

TEST(CudaWgmmaNarrowPlan, ClustersPadToWholeClustersOrGiveWay) {
  // 130 tiles in pairs: 130 blocks; in fours: 132 (two padding blocks) where 132 fit.
  expect_plan(plan({4096, 1024, 1024}, 4), 24, 130, 132, 4, "8B q/k/v in fours");
  // Only 128 blocks fit in pairs: the 48-row tiles do not, 64-row ones do (64 + 16 + 16).
  expect_plan(plan({4096, 1024, 1024}, 2, 128), 32, 96, 96, 2, "8B q/k/v in pairs, 128 fit");
  // No clustered launch fits at all: the narrowest tiles without clusters.
  expect_plan(plan({4096, 1024, 1024}, 2, 0), 24, 130, 130, 1, "no clusters fit");
  // Odd sizes: 1 + 1 + 19 tiles of 16 rows; a single row.
  expect_plan(plan({1, 7, 300}, 1), 8, 21, 21, 1, "1, 7 and 300 rows");
  expect_plan(plan({1}, 2), 8, 1, 2, 2, "one row in pairs");
}

TEST(CudaWgmmaNarrowPlan, PastOneWaveTheWidestTilesInTurn) {
  expect_plan(plan({60000}, 1), 128, 235, 132, 1, "60000 rows");
  expect_plan(plan({40000}, 2), 128, 157, 132, 1, "40000 rows in pairs");
  // 132 tiles of 256 rows exactly: one wave.
  expect_plan(plan({132 * 256}, 1), 128, 132, 132, 1, "132 tiles of 256");
}

void expect_stages(const cuda::WgmmaNarrowStages& got, int token_rows, int chunks, int bytes, int stages,
                   const std::string& what) {
  EXPECT_EQ(got.token_rows, token_rows) << what;
  EXPECT_EQ(got.chunks, chunks) << what;
  EXPECT_EQ(got.bytes, bytes) << what;
  EXPECT_EQ(got.stages, stages) << what;
}

TEST(CudaWgmmaNarrowPlan, StagesOnLlama3DecodeShapes) {
  // 8B o at one row: 8 token rows, 4 chunks (24 KiB / 4 KiB = 6, capped), (32 + 8) · 4 · 128 bytes a
  // stage; (192 KiB − 56 · 128 of overhang) / 20480 = 9.25.
  expect_stages(cuda::plan_wgmma_narrow_stages(32, 1, 1, 4096, 4), 8, 4, 20480, 9, "8B o, one row");
  // 8B gate/up at 64 rows in pairs: 224-row tiles take one chunk a stage, 288 · 128 bytes, 5 of them.
  expect_stages(cuda::plan_wgmma_narrow_stages(224, 64, 2, 4096, 4), 64, 1, 36864, 5, "8B gate/up, 64 rows");
  // 8B down at 9 rows in pairs: rows rounded to 16 (8 a cluster block); (192 KiB − 48 · 128) / 24576 = 7.75.
  expect_stages(cuda::plan_wgmma_narrow_stages(32, 9, 2, 14336, 4), 16, 4, 24576, 7, "8B down, 9 rows");
  // One chunk a stage asked for: 16 stages of (32 + 64) · 128 bytes fill the 192 KiB exactly.
  expect_stages(cuda::plan_wgmma_narrow_stages(32, 64, 1, 4096, 1), 64, 1, 12288, 16, "one chunk a stage");
}

TEST(CudaWgmmaNarrowPlan, StageChunksDivideKAndStagesFitTheSharedMemory) {
  // k of 7 chunks: neither 4, 3 nor 2 divide it, so one chunk a stage; the stage count is capped at 16.
  expect_stages(cuda::plan_wgmma_narrow_stages(32, 3, 1, 7 * 128, 4), 8, 1, 5120, 16, "k of 7 chunks");
  for (const int tile_rows : {16, 32, 48, 96, 160, 256})
    for (const int64_t rows : {1, 7, 8, 9, 33, 64})
      for (const int cluster : {1, 2, 4})
        for (const int64_t k : {128 * 6, 128 * 32, 128 * 112})
          for (const int max_chunks : {1, 2, 4}) {
            const std::string what = "tile " + std::to_string(tile_rows) + ", rows " + std::to_string(rows) + ", cluster " +
                                     std::to_string(cluster) + ", k " + std::to_string(k) + ", max " + std::to_string(max_chunks);
            const cuda::WgmmaNarrowStages got = cuda::plan_wgmma_narrow_stages(tile_rows, rows, cluster, k, max_chunks);
            EXPECT_GE(got.chunks, 1) << what;
            EXPECT_LE(got.chunks, max_chunks) << what;
            EXPECT_EQ(k / 128 % got.chunks, 0) << what;
            EXPECT_GE(got.token_rows, rows) << what;
            EXPECT_EQ(got.token_rows % (8 * cluster) == 0 || got.token_rows == cuda::kWgmmaNarrowTokens, true) << what;
            EXPECT_EQ(got.bytes, got.chunks * (tile_rows + got.token_rows) * 128) << what;
            EXPECT_GE(got.stages, 1) << what;
            EXPECT_LE(got.stages * got.bytes + (cuda::kWgmmaNarrowTokens - got.token_rows) * 128, cuda::kWgmmaNarrowStagesBytes)
                << what;
          }
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
