// cuBLASLt FP8 products of decode-sized batches (17–128 rows), whose algorithm is picked by timing
// the heuristic's candidates on the first call (n a multiple of 4: cuBLASLt's FP8 needs 16-byte
// aligned float32 output rows, and other n fall back to the GEMV/plain kernels), against the plain kernel launch_matmul_e4m3_simple:
// the tuning call and the tuned calls after it must both give the product, and a second instance
// (another backend's) must reuse the choice: bit-identical results. Random E4M3 codes over
// the finite range, per-row and per-channel scales, n not a multiple of any tile, outputs poisoned
// with NaN first. Tolerance: relative error (RMS) below 1e-3, the FP8 linears' bound elsewhere
// (tensor cores accumulate narrower than float32). Skips without a GPU.
#include "backend/device.h"
#include "support/random.h"
#include "support/require_gpu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#if OCTET_HAVE_CUDA
#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/kernels.h"
#include "support/device_vector.h"

namespace octet::backend {
namespace {

TEST(CudaGemmTuning, TunedFp8ProductsMatchThePlainKernel) {
  OCTET_REQUIRE_GPU();
  std::mt19937_64 rng(testing::test_seed("CudaGemmTuning.TunedFp8ProductsMatchThePlainKernel"));
  std::uniform_int_distribution<int> code(0, 253);  // 0x00–0x7E and 0x80–0xFE: no NaN codes
  const auto random_codes = [&](size_t count) {
    std::vector<uint8_t> codes(count);
    for (auto& c : codes) {
      const int v = code(rng);
      c = static_cast<uint8_t>(v < 127 ? v : v + 1);
    }
    return codes;
  };
  const auto random_scales = [&](size_t count) {
    std::vector<float> scales(count);
    std::uniform_real_distribution<float> scale(0.001f, 0.01f);
    for (auto& s : scales) s = scale(rng);
    return scales;
  };
  cuda::CublasLtGemm gemm, other;
  struct Shape { int64_t m, n, k; };
  for (Shape s : {Shape{17, 1000, 1024}, Shape{33, 260, 4096}, Shape{64, 4096, 1040}, Shape{100, 1536, 576},
                  Shape{128, 1032, 2048}, Shape{3, 512, 512}}) {
    const auto x = random_codes(static_cast<size_t>(s.m * s.k)), w = random_codes(static_cast<size_t>(s.n * s.k));
    const auto row_scales = random_scales(static_cast<size_t>(s.m)), col_scales = random_scales(static_cast<size_t>(s.n));
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
      for (float v : results.back()) ASSERT_FALSE(std::isnan(v)) << "unwritten output, " << s.m << " × " << s.n << " × " << s.k;
      EXPECT_LT(testing::relative_error(results.back(), expected), 1e-3)
          << "call " << call << ", " << s.m << " × " << s.n << " × " << s.k;
    }
    EXPECT_EQ(std::memcmp(results[1].data(), results[2].data(), results[1].size() * sizeof(float)), 0)
        << "two instances ran " << s.m << " × " << s.n << " × " << s.k << " differently";
  }
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
