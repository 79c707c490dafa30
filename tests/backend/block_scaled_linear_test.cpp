// FP8 layers with one weight scale per 128×128 block (make_fp8_block_linear): the CPU backend keeps
// codes and block scales as given and computes Σ_b scale_b · Σ_{i in block b} x_code · w_code · x_scale,
// checked here against a double-precision reference of that W8A8 product with the test's own activation
// quantizer, on shapes with partial last blocks and on exact multiples of 128.
#include "backend/backend.h"
#include "backend/cpu/cpu_tensors.h"
#include "common/error.h"
#include "support/random.h"
#include "support/safetensors_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace octet::backend {
namespace {

std::vector<float>& data(Activations& a) { return static_cast<cpu::CpuActivations&>(a).data; }

struct BlockLayer {
  std::vector<uint8_t> codes;  // [out, in]
  std::vector<float> scales;   // [ceil(out/128), ceil(in/128)]
};

// Random finite codes (0x7F / 0xFF are NaN, never weights) and block scales over two decades.
BlockLayer random_block_layer(std::mt19937_64& rng, int64_t out, int64_t in) {
  BlockLayer layer;
  std::uniform_int_distribution<int> code(0, 253);
  layer.codes.resize(static_cast<size_t>(out * in));
  for (auto& c : layer.codes) {
    const int v = code(rng);
    c = static_cast<uint8_t>(v < 127 ? v : v + 1);
  }
  std::uniform_real_distribution<double> log_scale(-14.0, -7.0);
  layer.scales.resize(static_cast<size_t>(fp8_scale_blocks(out) * fp8_scale_blocks(in)));
  for (auto& s : layer.scales) s = static_cast<float>(std::exp2(log_scale(rng)));
  return layer;
}

TEST(BlockScaledLinear, CpuMatchesADoubleReference) {
  std::mt19937_64 rng(testing::test_seed("BlockScaledLinear.CpuMatchesADoubleReference"));
  struct Shape { int64_t rows, in, out; };
  const Shape shapes[] = {{1, 300, 200}, {5, 300, 200}, {17, 256, 384}, {3, 128, 128}, {2, 70, 37}, {4, 520, 130}};
  auto backend = make_cpu_backend(2);
  for (float input_scale : {0.0f, 0.05f})
    for (Shape s : shapes) {
      const BlockLayer layer = random_block_layer(rng, s.out, s.in);
      const auto x = testing::random_normal(rng, static_cast<size_t>(s.rows * s.in));
      auto w = backend->make_fp8_block_linear(layer.codes.data(), layer.scales.data(), s.out, s.in,
                                              LinearSpec{LinearFormat::fp8, input_scale});
      const auto& cpu_w = static_cast<const cpu::CpuLinear&>(*w);
      EXPECT_EQ(cpu_w.codes, layer.codes);  // kept as given
      EXPECT_EQ(w->bytes(), layer.codes.size() + layer.scales.size() * 4);
      auto in = backend->make_activations(s.rows, s.in);
      data(*in) = x;
      auto out = backend->make_activations(s.rows, s.out);
      std::fill(data(*out).begin(), data(*out).end(), std::nanf(""));
      backend->linear(*in, *w, *out);

      const int64_t k_blocks = fp8_scale_blocks(s.in);
      for (int64_t r = 0; r < s.rows; ++r) {
        // The test's activation quantizer: amax / 448 per token (or the static scale), x times the
        // float reciprocal rounded to the nearest E4M3 code.
        float amax = 0;
        for (int64_t i = 0; i < s.in; ++i) amax = std::max(amax, std::fabs(x[r * s.in + i]));
        const float x_scale = input_scale > 0 ? input_scale : amax / 448.0f;
        const float inverse = 1.0f / x_scale;
        for (int64_t o = 0; o < s.out; ++o) {
          double sum = 0, magnitude = 0;
          for (int64_t i = 0; i < s.in; ++i) {
            const double term = static_cast<double>(testing::e4m3_value(testing::e4m3_code(x[r * s.in + i] * inverse))) *
                                testing::e4m3_value(layer.codes[o * s.in + i]) *
                                layer.scales[(o / kFp8ScaleBlock) * k_blocks + i / kFp8ScaleBlock];
            sum += term;
            magnitude += std::fabs(term);
          }
          // float32 sums of at most 128 exact products per block, then of the scaled block sums:
          // error ≤ (128 + blocks) · 2⁻²⁴ · Σ|terms| (< 1e-5 of it for in ≤ 520), relative to the terms'
          // magnitudes, not to a sum that may cancel.
          ASSERT_NEAR(data(*out)[r * s.out + o], sum * x_scale, 1e-5 * magnitude * x_scale + 1e-30)
              << "rows " << s.rows << " in " << s.in << " out " << s.out << " at " << r << "," << o << " input scale "
              << input_scale;
        }
      }
    }
}

// Folding block scales into per-row scales would re-round the weights; a backend without a block
// kernel refuses instead, naming the layer.
TEST(BlockScaledLinear, TheDefaultRefusesRatherThanReRounding) {
  auto backend = make_cpu_backend(1);
  std::vector<uint8_t> codes(200 * 300, 0x38);
  std::vector<float> scales(static_cast<size_t>(fp8_scale_blocks(200) * fp8_scale_blocks(300)), 0.01f);
  try {
    backend->Backend::make_fp8_block_linear(codes.data(), scales.data(), 200, 300, LinearSpec{});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("128x128 block scales"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[200, 300]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace octet::backend
