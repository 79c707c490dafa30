// Pre-quantized FP8 weights (a checkpoint's codes and scales) are kept exactly: encode_rows gives
// back every code from code × scale, and the CPU backend's direct path, the default path through
// make_linear, and a slow W8A8 reference written here agree.
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "fp8/fp8.h"
#include "fp8/scaling.h"
#include "support/random.h"
#include "support/safetensors_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace octet::backend {
namespace {

std::vector<float>& data(Activations& a) { return static_cast<cpu::CpuActivations&>(a).data; }

TEST(PrequantizedLinear, EncodeRowsGivesBackEveryCodeFromCodeTimesScale) {
  std::mt19937_64 rng(testing::test_seed("PrequantizedLinear.EncodeRowsGivesBackEveryCodeFromCodeTimesScale"));
  std::uniform_real_distribution<double> log_scale(-30.0, 12.0);  // scales from 1e-13 to 4000
  constexpr size_t kRows = 64, kCols = 256;
  std::vector<float> values(kRows * kCols), scales(kRows);
  std::vector<uint8_t> codes(kRows * kCols);
  for (size_t r = 0; r < kRows; ++r) {
    scales[r] = static_cast<float>(std::exp2(log_scale(rng)));
    for (size_t c = 0; c < kCols; ++c) {
      uint8_t code = static_cast<uint8_t>(c);
      if ((code & 0x7f) == 0x7f) code = 0x01;  // NaN codes are not weights
      codes[r * kCols + c] = code;
      values[r * kCols + c] = testing::e4m3_value(code) * scales[r];
    }
  }
  const auto encoded = fp8::encode_rows(values.data(), kRows, kCols, scales);
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] == 0x80) continue;  // -0 may come back as +0: the same weight
    ASSERT_EQ(encoded[i], codes[i]) << "row " << i / kCols << " scale " << scales[i / kCols];
  }
}

TEST(PrequantizedLinear, DirectDefaultAndReferenceAgree) {
  std::mt19937_64 rng(testing::test_seed("PrequantizedLinear.DirectDefaultAndReferenceAgree"));
  constexpr int64_t kOut = 37, kIn = 70, kRows = 3;
  std::vector<uint8_t> codes(kOut * kIn);
  for (auto& c : codes) {
    c = static_cast<uint8_t>(rng() % 256);
    if ((c & 0x7f) == 0x7f) c = 0x3e;
  }
  std::vector<float> scales(kOut);
  for (auto& s : scales) s = std::uniform_real_distribution<float>(1e-4f, 1e-2f)(rng);
  const float input_scale = 0.02f;
  const auto x = testing::random_normal(rng, kRows * kIn);

  auto backend = make_cpu_backend(1);
  const LinearSpec spec{LinearFormat::fp8, input_scale};
  auto direct = backend->make_fp8_linear(codes.data(), scales.data(), kOut, kIn, spec);
  auto through_default = backend->Backend::make_fp8_linear(codes.data(), scales.data(), kOut, kIn, spec);
  const auto& d = static_cast<const cpu::CpuLinear&>(*direct);
  const auto& t = static_cast<const cpu::CpuLinear&>(*through_default);
  EXPECT_EQ(d.codes, codes);
  EXPECT_EQ(t.scales, d.scales);
  for (size_t i = 0; i < codes.size(); ++i)
    if (codes[i] != 0x80) {
      ASSERT_EQ(t.codes[i], codes[i]) << i;
    }

  auto in = backend->make_activations(kRows, kIn);
  data(*in) = x;
  auto out_direct = backend->make_activations(kRows, kOut);
  auto out_default = backend->make_activations(kRows, kOut);
  backend->linear(*in, *direct, *out_direct);
  backend->linear(*in, *through_default, *out_default);
  EXPECT_EQ(data(*out_direct), data(*out_default));

  // W8A8 with a static input scale: x_q = E4M3(x / input_scale); y = Σ x_q · w_code · input_scale · w_scale.
  // (x times the float reciprocal, as a GPU kernel divides, so that no element sits on the other side of
  // a rounding boundary.)
  const float inverse_input_scale = 1.0f / input_scale;
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t o = 0; o < kOut; ++o) {
      double sum = 0, magnitude = 0;
      for (int64_t i = 0; i < kIn; ++i) {
        const double term = static_cast<double>(testing::e4m3_value(testing::e4m3_code(x[r * kIn + i] * inverse_input_scale))) *
                            testing::e4m3_value(codes[o * kIn + i]);
        sum += term;
        magnitude += std::fabs(term);
      }
      const double expected = sum * input_scale * scales[o];
      // float32 accumulation of 70 terms: error ≤ 70 · 2⁻²⁴ · Σ|terms| (≈ 4.2e-6 of it), so the bound is
      // relative to the terms' magnitudes, not to a sum that may cancel (1e-5 of |sum| failed on 1 seed in ~10⁴).
      EXPECT_NEAR(data(*out_direct)[r * kOut + o], expected, 1e-5 * magnitude * input_scale * scales[o] + 1e-12)
          << r << "," << o;
    }
}

}  // namespace
}  // namespace octet::backend
