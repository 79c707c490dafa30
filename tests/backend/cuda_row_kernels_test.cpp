// The per-row kernels of a decode step (add + rmsnorm + quantize, SwiGLU + quantize, quantize),
// called through their launch wrappers, against plain host references on fresh random inputs:
// rows 1–200 (rows split over clusters of 2–8 blocks on sm_90, ragged last spans, and one block per
// row), widths that take the register-resident kernels (multiples of 4 up to 28672, every
// float4-per-thread count) and widths that fall back to the loop kernels (not multiples of 4),
// outputs poisoned with NaN first. Float outputs: relative error per element below 1e-5 (SwiGLU's
// __expf, rmsnorm's summation order and rsqrtf differ from the host's double reference); the
// residual (one float32 add) and the codes and scales exactly: scale = amax / 448 of the kernel's
// own float output and codes = E4M3(value · 1/scale), what launch_quantize_rows_e4m3 and the CPU
// backend compute from it. Skips without a GPU.
#include "backend/device.h"
#include "fp8/fp8.h"
#include "support/random.h"
#include "support/require_gpu.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <limits>
#include <vector>

#if OCTET_HAVE_CUDA
#include "backend/cuda/kernels.h"
#include "support/device_vector.h"

namespace octet::backend {
namespace {

template <typename T>
using Device = testing::DeviceVector<T>;

double max_relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;  // unwritten (poisoned)
    worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(std::abs(want[i]), 1e-3));
  }
  return worst;
}

// The codes and scales must be those the float output itself quantizes to, bit for bit.
void expect_codes_of(const std::vector<float>& out, int64_t rows, int64_t cols, const std::vector<uint8_t>& codes,
                     const std::vector<float>& scales, const char* what, float static_scale = 0.0f) {
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0.0f;
    for (int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::abs(out[r * cols + c]));
    float scale = static_scale > 0.0f ? static_scale : (amax > 0.0f && std::isfinite(amax) ? amax / 448.0f : 1.0f);
    ASSERT_EQ(scales[r], scale) << what << ": scale of row " << r << " of " << rows << " × " << cols;
    const float inverse = 1.0f / scale;
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_EQ(codes[r * cols + c], fp8::encode_e4m3(out[r * cols + c] * inverse))
          << what << ": code (" << r << ", " << c << ") of " << rows << " × " << cols << ", value " << out[r * cols + c];
  }
}

class CudaRowKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    OCTET_REQUIRE_GPU();
    rng_.seed(testing::test_seed(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }
  std::mt19937_64 rng_;
};

// 1–128: split over clusters of 8, 4 or 2 blocks on sm_90 (and ragged last spans); 200: one block per row.
const int64_t kRows[] = {1, 3, 17, 33, 64, 100, 128, 200};
constexpr int64_t kMaxElements = 6 << 20;  // keeps the host references quick

TEST_F(CudaRowKernels, SwigluQuantizeMatchesHostReference) {
  // 14336 and 28672: Llama 8B / 70B; one block per row: 12 → 1 float4 per thread, 4100 → 2,
  // 16384 → 4, 28672 → 8; 1001 and 4098 take the loop kernel.
  for (int64_t cols : {12, 1001, 4096, 4098, 4100, 14336, 16384, 28672}) {
    for (int64_t rows : kRows) {
      if (rows * cols > kMaxElements) continue;
      const size_t count = static_cast<size_t>(rows * cols);
      auto gate = testing::random_normal(rng_, count, 2.0f), up = testing::random_normal(rng_, count);
      Device<float> g(count, &gate), u(count, &up), out(count), scales(static_cast<size_t>(rows));
      Device<uint8_t> codes(count);
      cuda::launch_swiglu_quantize(g.data, u.data, rows, cols, out.data, codes.data, scales.data, nullptr);
      const auto got = out.host();
      std::vector<double> want(count);
      for (size_t i = 0; i < count; ++i) want[i] = gate[i] / (1.0 + std::exp(-double(gate[i]))) * up[i];
      EXPECT_LT(max_relative_error(got, want), 1e-5) << rows << " × " << cols;
      expect_codes_of(got, rows, cols, codes.host(), scales.host(), "swiglu");
    }
  }
}

TEST_F(CudaRowKernels, AddRmsnormQuantizeMatchesHostReference) {
  // 4096 / 8192: Llama 8B / 70B hidden sizes; 16384 the widest resident row; 16388 and 1001 the loop kernel.
  for (int64_t cols : {12, 576, 1001, 4096, 5000, 8192, 16384, 16388}) {
    for (int64_t rows : kRows) {
      for (bool with_delta : {true, false}) {
        for (bool with_codes : {true, false}) {
          const size_t count = static_cast<size_t>(rows * cols);
          auto residual = testing::random_normal(rng_, count), delta = testing::random_normal(rng_, count);
          auto weight = testing::random_normal(rng_, static_cast<size_t>(cols), 0.2f);
          for (auto& w : weight) w += 1.0f;
          Device<float> r(count, &residual), d(count, &delta), w(static_cast<size_t>(cols), &weight), out(count);
          Device<float> scales(static_cast<size_t>(rows));
          Device<uint8_t> codes(count);
          const float eps = 1e-5f;
          cuda::launch_add_rmsnorm_quantize(r.data, with_delta ? d.data : nullptr, w.data, eps, rows, cols, out.data,
                                            with_codes ? codes.data : nullptr, with_codes ? scales.data : nullptr, nullptr);
          std::vector<double> want_residual(count), want(count);
          for (int64_t row = 0; row < rows; ++row) {
            double sum = 0.0;
            for (int64_t c = 0; c < cols; ++c) {
              const size_t i = static_cast<size_t>(row * cols + c);
              want_residual[i] = with_delta ? double(float(residual[i] + delta[i])) : residual[i];
              sum += want_residual[i] * want_residual[i];
            }
            const double inv_rms = 1.0 / std::sqrt(sum / double(cols) + eps);
            for (int64_t c = 0; c < cols; ++c) {
              const size_t i = static_cast<size_t>(row * cols + c);
              want[i] = want_residual[i] * inv_rms * weight[static_cast<size_t>(c)];
            }
          }
          const std::string what = std::to_string(rows) + " × " + std::to_string(cols) + (with_delta ? " +delta" : "") +
                                   (with_codes ? " +codes" : "");
          // The residual (x + delta, one float32 add) is exact.
          EXPECT_EQ(max_relative_error(r.host(), want_residual), 0.0) << what;
          const auto got = out.host();
          EXPECT_LT(max_relative_error(got, want), 1e-5) << what;
          if (with_codes) expect_codes_of(got, rows, cols, codes.host(), scales.host(), what.c_str());
        }
      }
    }
  }
}

TEST_F(CudaRowKernels, QuantizeRowsDynamicAndStaticMatchHostEncoding) {
  for (int64_t cols : {4, 30, 1001, 4096, 4100, 14336, 28672, 32772}) {
    for (int64_t rows : kRows) {
      if (rows * cols > kMaxElements) continue;
      const size_t count = static_cast<size_t>(rows * cols);
      auto x = testing::random_normal(rng_, count, 3.0f);
      // A zero row (scale 1) and a row with one large value (saturating codes under a static scale).
      if (rows > 2) {
        std::fill(x.begin() + cols, x.begin() + 2 * cols, 0.0f);
        x[static_cast<size_t>(2 * cols)] = 1e4f;
      }
      for (float static_scale : {0.0f, 0.0123f}) {
        Device<float> in(count, &x), scales(static_cast<size_t>(rows));
        Device<uint8_t> codes(count);
        cuda::launch_quantize_rows_e4m3(in.data, rows, cols, static_scale, codes.data, scales.data, nullptr);
        expect_codes_of(x, rows, cols, codes.host(), scales.host(), "quantize", static_scale);
      }
    }
  }
}

}  // namespace
}  // namespace octet::backend

#endif  // OCTET_HAVE_CUDA
