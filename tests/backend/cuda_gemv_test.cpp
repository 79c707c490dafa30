// The CUDA-core FP8 GEMV (gemv_fp8.cu, gemv_e4m3_kernel) at one and two rows against the plain
// kernel launch_matmul_e4m3_simple: random E4M3 codes over the finite range (NaN codes excluded),
// per-row and per-channel scales, k from one 16-byte chunk to 28672 (rows shorter and longer than
// a lane's first round of 4 chunks, odd multiples of 16 whose lanes get different chunk counts), n
// not a multiple of the 8 rows of a block, groups of weights of different n, outputs poisoned with
// NaN first. Both accumulate exact products in float32 in different orders: the bound is 1e-5
// relative (RMS). OCTET_CUDA_TENSOR_GEMV=0 keeps two rows (and n, k ≥ 8192) off the tensor cores.
// Skips without a GPU.
#include "backend/device.h"
#include "support/random.h"
#include "support/require_gpu.h"
#include "support/scoped_environment.h"

#include <gtest/gtest.h>

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

class CudaGemv : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }

  using Operand = testing::DeviceFp8Rows;  // weights with channel scales, inputs with row scales
  Operand random_operand(int64_t n, int64_t k) { return testing::random_device_fp8_rows(rng_, n, k); }

  // The GEMV of x with the weights as one group, from outputs poisoned with NaN: each member's
  // output; an unwritten element fails the test.
  std::vector<std::vector<float>> gemv(const Operand& x, const std::vector<const Operand*>& weights, int64_t k) {
    const auto product = testing::group_with_outputs(weights, x.n);
    EXPECT_TRUE(cuda::gemv_e4m3_fits(x.n, k));
    cuda::launch_gemv_e4m3_group(x.codes->data, x.scales->data, x.n, product.group, k, nullptr);
    return testing::download_outputs(product, std::to_string(x.n) + " rows, k " + std::to_string(k));
  }

  std::vector<double> reference(const Operand& x, const Operand& w, int64_t k) {
    DeviceVector<float> want(static_cast<size_t>(x.n * w.n));
    cuda::launch_matmul_e4m3_simple(x.codes->data, x.scales->data, x.n, w.codes->data, w.scales->data, w.n, k, want.data,
                                    nullptr);
    const auto values = want.host();
    return std::vector<double>(values.begin(), values.end());
  }

  // Each member of the group against its own plain product.
  void check_against_plain_kernel(const Operand& x, const std::vector<const Operand*>& weights, int64_t k) {
    const auto got = gemv(x, weights, k);
    for (size_t i = 0; i < weights.size(); ++i) {
      EXPECT_LT(testing::relative_error(got[i], reference(x, *weights[i], k)), 1e-5)
          << "member " << i << ", " << x.n << " rows × n " << weights[i]->n << " × k " << k;
    }
  }

  std::mt19937_64 rng_;
};

// Single weights: k of one chunk (16), three (48), 65 (1040), 129 (2064: an odd count), 4096 (8
// chunks a lane: two rounds), 4112 (257: one lane 9), 8192, 14336 (the down projection of
// Llama-3.1-8B), 28672; n = 77 (the last block 5 rows) and 1030.
TEST_F(CudaGemv, OneAndTwoRowsMatchThePlainKernel) {
  const testing::ScopedEnvironment cuda_cores("OCTET_CUDA_TENSOR_GEMV", "0");
  for (int64_t k : {16, 48, 1040, 2064, 4096, 4112, 8192, 14336, 28672}) {
    for (int64_t n : {77, 1030}) {
      const Operand w = random_operand(n, k);
      for (int64_t rows : {1, 2}) check_against_plain_kernel(random_operand(rows, k), {&w}, k);
    }
  }
}

// q/k/v-like groups of three members of different n (blocks dealt out unevenly, the last block of
// each member partial), each member against its own plain product.
TEST_F(CudaGemv, GroupsOfThreeWeightsMatchThePlainKernel) {
  const testing::ScopedEnvironment cuda_cores("OCTET_CUDA_TENSOR_GEMV", "0");
  for (int64_t k : {4096, 4112, 14336}) {
    const Operand q = random_operand(1000, k), kv = random_operand(131, k), v = random_operand(384, k);
    for (int64_t rows : {1, 2}) check_against_plain_kernel(random_operand(rows, k), {&q, &kv, &v}, k);
  }
}

// Decode-sized grids at k = 4096: Llama-3.1-8B's q/k/v at batch 1 (6144 rows, 768 blocks) and one
// of 8200 rows (1025 blocks).
TEST_F(CudaGemv, DecodeSizedGridsMatchThePlainKernel) {
  const testing::ScopedEnvironment cuda_cores("OCTET_CUDA_TENSOR_GEMV", "0");
  for (int64_t n : {6144, 8200}) {
    const Operand w = random_operand(n, 4096);
    check_against_plain_kernel(random_operand(1, 4096), {&w}, 4096);
  }
}

// The one-row kernel's rounds (2 chunks a lane at 8 blocks a SM for k <= 4096 by default, 4 for longer
// rows; OCTET_CUDA_GEMV_ROUNDS=4 or 2x8 either everywhere) add the same products in the same order: the
// same bits, at k with whole rounds, partial rounds and the tail loop (16 … 14336), for a block's worth
// of rows and for Llama-3.1-8B's q/k/v grid. An unknown value is refused by name.
TEST_F(CudaGemv, OneRowRoundsGiveTheSameBits) {
  const testing::ScopedEnvironment cuda_cores("OCTET_CUDA_TENSOR_GEMV", "0");
  for (int64_t k : {16, 48, 1040, 2064, 4096, 4112, 14336}) {
    for (int64_t n : {77, 6144}) {
      const Operand w = random_operand(n, k), x = random_operand(1, k);
      const auto want = gemv(x, {&w}, k);
      for (const char* rounds_of : {"4", "2x8"}) {
        const testing::ScopedEnvironment rounds("OCTET_CUDA_GEMV_ROUNDS", rounds_of);
        const auto got = gemv(x, {&w}, k);
        ASSERT_EQ(got[0].size(), want[0].size());
        EXPECT_EQ(std::memcmp(got[0].data(), want[0].data(), want[0].size() * sizeof(float)), 0)
            << "OCTET_CUDA_GEMV_ROUNDS=" << rounds_of << ", n " << n << " × k " << k;
      }
    }
  }
  const Operand w = random_operand(8, 64), x = random_operand(1, 64);
  const testing::ScopedEnvironment rounds("OCTET_CUDA_GEMV_ROUNDS", "3");
  try {
    gemv(x, {&w}, 64);
    ADD_FAILURE() << "OCTET_CUDA_GEMV_ROUNDS=3 was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("OCTET_CUDA_GEMV_ROUNDS is '3'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
