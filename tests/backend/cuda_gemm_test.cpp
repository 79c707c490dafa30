// cuBLASLt FP8 products against the plain kernel launch_matmul_e4m3_simple. (1) Decode-sized
// batches (17–128 rows), whose algorithm is picked by timing the heuristic's candidates on the first
// call: the tuning call and the tuned calls after it must both give the product, and a second
// instance (another backend's) must reuse the choice: bit-identical results. (2) The per-row and
// per-channel scales applied in cuBLASLt's epilogue (run_e4m3_scaled) at decode and prefill sizes:
// the product with two different pairs of scale vectors on one plan (the vectors are set per call),
// tuned and untuned, equal to the unscaled product followed by the scaling pass. Random E4M3 codes
// over the finite range, per-row and per-channel scales, n a multiple of 4 (cuBLASLt's FP8 needs
// 16-byte aligned float32 output rows; other n fall back to the GEMV/plain kernels) but not always of
// any tile, outputs poisoned with NaN first. Tolerance: relative error (RMS) below 1e-3, the FP8 linears' bound
// elsewhere (tensor cores accumulate narrower than float32). Skips without a GPU.
#include "backend/device.h"
#include "support/random.h"
#include "support/require_gpu.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#if OCTET_HAVE_CUDA
#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/kernels.h"
#include "support/device_vector.h"

namespace octet::backend {
namespace {

using testing::random_e4m3_codes;
using testing::random_fp8_scales;

bool has_nan(const std::vector<float>& values) {
  return std::any_of(values.begin(), values.end(), [](float v) { return std::isnan(v); });
}

TEST(CudaGemmTuning, TunedFp8ProductsMatchThePlainKernel) {
  OCTET_REQUIRE_GPU();
  std::mt19937_64 rng(testing::test_seed("CudaGemmTuning.TunedFp8ProductsMatchThePlainKernel"));
  cuda::CublasLtGemm gemm, other;
  struct Shape { int64_t m, n, k; };
  for (Shape s : {Shape{17, 1000, 1024}, Shape{33, 260, 4096}, Shape{64, 4096, 1040}, Shape{100, 1536, 576},
                  Shape{128, 1032, 2048}, Shape{3, 512, 512}}) {
    const auto x = random_e4m3_codes(rng, static_cast<size_t>(s.m * s.k)), w = random_e4m3_codes(rng, static_cast<size_t>(s.n * s.k));
    const auto row_scales = random_fp8_scales(rng, static_cast<size_t>(s.m)), col_scales = random_fp8_scales(rng, static_cast<size_t>(s.n));
    testing::DeviceVector<uint8_t> dx(x.size(), &x), dw(w.size(), &w);
    testing::DeviceVector<float> drow(row_scales.size(), &row_scales), dcol(col_scales.size(), &col_scales);
    testing::DeviceVector<float> want(static_cast<size_t>(s.m * s.n));
    cuda::launch_matmul_e4m3_simple(dx.data, drow.data, s.m, dw.data, dcol.data, s.n, s.k, want.data, nullptr);
    const auto reference = want.host();
    const std::vector<double> expected(reference.begin(), reference.end());
    std::vector<std::vector<float>> results;
    // Call 0 tunes, call 1 runs the kept algorithm, call 2 is another instance (another backend's),
    // which must run the same algorithm: bit-identical to call 1.
    for (int call = 0; call < 3; ++call) {
      testing::DeviceVector<float> out(static_cast<size_t>(s.m * s.n));
      ASSERT_TRUE((call < 2 ? gemm : other).run(cuda::GemmType::e4m3, dx.data, dw.data, out.data, s.m, s.n, s.k, nullptr))
          << s.m << " × " << s.n << " × " << s.k;
      cuda::launch_scale_rows_cols(out.data, s.m, s.n, drow.data, dcol.data, nullptr);
      results.push_back(out.host());
      ASSERT_FALSE(has_nan(results.back())) << "unwritten output, " << s.m << " × " << s.n << " × " << s.k;
      EXPECT_LT(testing::relative_error(results.back(), expected), 1e-3)
          << "call " << call << ", " << s.m << " × " << s.n << " × " << s.k;
    }
    EXPECT_EQ(std::memcmp(results[1].data(), results[2].data(), results[1].size() * sizeof(float)), 0)
        << "two instances ran " << s.m << " × " << s.n << " × " << s.k << " differently";
  }
}


// The scales in the epilogue. Call 0 on instance `gemm` (tunes at ≤ 128 rows) with scale pair a,
// call 1 on the same plan with pair b (other vectors at other addresses: the pointers must follow
// each call), call 2 on instance `other` with pair b: bit-identical to call 1 (the shared tuned
// choice). The reference for pair b is pair a's rescaled element by element in double (an identity
// of the scaling: out = row · col · Σ). A shape cuBLASLt has no scaled algorithm for must say so
// consistently (false on every call); on Hopper the prefill-sized shapes (≥ 300 rows, the point of
// the epilogue) must have one.
TEST(CudaGemmEpilogueScales, ScaledFp8ProductsMatchThePlainKernelAndTheScalingPass) {
  OCTET_REQUIRE_GPU();
  std::mt19937_64 rng(testing::test_seed("CudaGemmEpilogueScales.ScaledFp8ProductsMatchThePlainKernelAndTheScalingPass"));
  int device = 0;
  cudaDeviceProp props{};
  ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
  ASSERT_EQ(cudaGetDeviceProperties(&props, device), cudaSuccess);
  if (props.major * 10 + props.minor < 89) GTEST_SKIP() << "FP8 needs compute capability 8.9; " << props.name << " has "
                                                        << props.major << "." << props.minor;
  cuda::CublasLtGemm gemm, other;
  struct Shape { int64_t m, n, k; };
  // About 5 G multiply-adds on the plain kernel in all: the suite also runs under compute-sanitizer.
  for (Shape s : {Shape{17, 4104, 4096}, Shape{17, 1024, 1024}, Shape{128, 1024, 4096}, Shape{128, 4104, 1024},
                  Shape{300, 4104, 1024}, Shape{300, 1024, 4096}, Shape{1024, 1024, 1024}, Shape{64, 1036, 1040}}) {
    const std::string shape = std::to_string(s.m) + " × " + std::to_string(s.n) + " × " + std::to_string(s.k);
    const auto m = static_cast<size_t>(s.m), n = static_cast<size_t>(s.n);
    const auto x = random_e4m3_codes(rng, m * static_cast<size_t>(s.k)), w = random_e4m3_codes(rng, n * static_cast<size_t>(s.k));
    const std::vector<float> rows_a = random_fp8_scales(rng, m), cols_a = random_fp8_scales(rng, n);
    const std::vector<float> rows_b = random_fp8_scales(rng, m), cols_b = random_fp8_scales(rng, n);
    testing::DeviceVector<uint8_t> dx(x.size(), &x), dw(w.size(), &w);
    testing::DeviceVector<float> drows_a(m, &rows_a), dcols_a(n, &cols_a), drows_b(m, &rows_b), dcols_b(n, &cols_b);
    testing::DeviceVector<float> want(m * n);
    cuda::launch_matmul_e4m3_simple(dx.data, drows_a.data, s.m, dw.data, dcols_a.data, s.n, s.k, want.data, nullptr);
    const auto plain = want.host();
    std::vector<double> expected_a(plain.begin(), plain.end()), expected_b(m * n);
    for (size_t i = 0; i < m; ++i)
      for (size_t j = 0; j < n; ++j)
        expected_b[i * n + j] = expected_a[i * n + j] / (double(rows_a[i]) * cols_a[j]) * (double(rows_b[i]) * cols_b[j]);

    // Today's other path: the unscaled product, then the scaling pass.
    testing::DeviceVector<float> pass(m * n);
    ASSERT_TRUE(gemm.run(cuda::GemmType::e4m3, dx.data, dw.data, pass.data, s.m, s.n, s.k, nullptr)) << shape;
    cuda::launch_scale_rows_cols(pass.data, s.m, s.n, drows_a.data, dcols_a.data, nullptr);
    const auto scaled_after = pass.host();
    ASSERT_FALSE(has_nan(scaled_after)) << "unwritten output of the scaling pass, " << shape;
    EXPECT_LT(testing::relative_error(scaled_after, expected_a), 1e-3) << "scaling pass, " << shape;

    std::vector<std::vector<float>> results;
    for (int call = 0; call < 3; ++call) {
      testing::DeviceVector<float> out(m * n);
      const bool pair_a = call == 0;
      const bool ran = (call < 2 ? gemm : other)
                           .run_e4m3_scaled(dx.data, pair_a ? drows_a.data : drows_b.data, dw.data,
                                            pair_a ? dcols_a.data : dcols_b.data, out.data, s.m, s.n, s.k, nullptr);
      if (call == 0 && !ran) {
        std::printf("[ note     ] %s: no cuBLASLt algorithm with the scales in the epilogue on %s (the backend "
                    "falls back to the scaling pass)\n", shape.c_str(), props.name);
        EXPECT_FALSE(props.major == 9 && s.m >= 300) << "Hopper has no scaled algorithm for prefill shape " << shape;
        EXPECT_FALSE(gemm.run_e4m3_scaled(dx.data, drows_b.data, dw.data, dcols_b.data, out.data, s.m, s.n, s.k, nullptr))
            << "a refused shape must stay refused, " << shape;
        break;
      }
      ASSERT_TRUE(ran) << "call " << call << " refused after call 0 ran, " << shape;
      results.push_back(out.host());
      ASSERT_FALSE(has_nan(results.back())) << "unwritten output, call " << call << ", " << shape;
      EXPECT_LT(testing::relative_error(results.back(), pair_a ? expected_a : expected_b), 1e-3)
          << "call " << call << ", " << shape;
    }
    if (results.size() < 3) continue;
    const std::vector<double> after(scaled_after.begin(), scaled_after.end());
    EXPECT_LT(testing::relative_error(results[0], after), 1e-3) << "scales in the epilogue vs the scaling pass, " << shape;
    EXPECT_EQ(std::memcmp(results[1].data(), results[2].data(), results[1].size() * sizeof(float)), 0)
        << "two instances ran " << shape << " differently";
  }
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
