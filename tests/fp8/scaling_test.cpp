#include "fp8/scaling.h"

#include "common/error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <iostream>
#include <limits>
#include <random>
#include <vector>

namespace octet::fp8 {
namespace {

// Round-to-nearest loses at most half an ulp: 2^-(mantissa_bits+1) of the value for normals (2^-4 for
// E4M3, 2^-3 for E5M2), and half the smallest subnormal step times the scale below the normal range.
// A few float roundings (x·(1/s), code·s) add ~1e-7 relative on top, covered by kFloatSlack.
// Since |x| ≤ amax of its group, the error is also ≤ 2^-4 (E4M3) of that group's amax.
double relative_step(Format format) { return format == Format::e4m3 ? 0x1.0p-4 : 0x1.0p-3; }
double subnormal_half_step(Format format) { return format == Format::e4m3 ? 0x1.0p-10 : 0x1.0p-17; }
constexpr double kFloatSlack = 1e-6;

uint64_t fresh_seed(const char* what) {
  const uint64_t seed = (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
  std::cout << "[ seed     ] " << what << " seed " << seed << "\n";
  return seed;
}

// Values spanning several decades (and both signs) so every scale group sees normals and subnormals.
std::vector<float> random_matrix(size_t rows, size_t cols, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> log_magnitude(-6.0f, 3.0f);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> values(rows * cols);
  for (float& x : values) x = (negative(rng) ? -1.0f : 1.0f) * std::pow(10.0f, log_magnitude(rng));
  return values;
}

float reference_amax(const std::vector<float>& values, size_t rows, size_t cols, size_t row_begin, size_t row_end,
                     size_t col_begin, size_t col_end) {
  float result = 0.0f;
  for (size_t r = row_begin; r < std::min(row_end, rows); ++r)
    for (size_t c = col_begin; c < std::min(col_end, cols); ++c) result = std::max(result, std::fabs(values[r * cols + c]));
  return result;
}

// Element-wise bound plus the coarser "fraction of the group amax" bound from the brief.
void expect_round_trip_within_bounds(const std::vector<float>& values, const QuantizedMatrix& matrix,
                                     const std::vector<float>& group_amax_of_element) {
  const std::vector<float> restored = dequantize(matrix);
  ASSERT_EQ(restored.size(), values.size());
  const double step = relative_step(matrix.format);
  size_t failures = 0;
  for (size_t i = 0; i < values.size() && failures < 10; ++i) {
    const size_t row = i / matrix.cols;
    const size_t col = i % matrix.cols;
    const double scale = matrix.scale_at(row, col);
    const double error = std::fabs(static_cast<double>(values[i]) - restored[i]);
    const double element_bound = (step + kFloatSlack) * std::fabs(values[i]) + subnormal_half_step(matrix.format) * scale * (1 + kFloatSlack);
    const double group_bound = (step + kFloatSlack) * group_amax_of_element[i];
    if (error > element_bound || error > group_bound) {
      ++failures;
      ADD_FAILURE() << "element (" << row << ", " << col << ") " << values[i] << " restored " << restored[i]
                    << " error " << error << " bounds " << element_bound << " / " << group_bound;
    }
  }
}

TEST(Scaling, ScaleIsAmaxOverFormatMax) {
  EXPECT_EQ(scale_from_amax(448.0f, Format::e4m3), 1.0f);
  EXPECT_EQ(scale_from_amax(3.7f, Format::e4m3), 3.7f / 448.0f);
  EXPECT_EQ(scale_from_amax(3.7f, Format::e5m2), 3.7f / 57344.0f);
  EXPECT_EQ(scale_from_amax(0.0f, Format::e4m3), 1.0f);
  // Too small for a normal scale: clamped so that 1/scale stays finite.
  EXPECT_EQ(scale_from_amax(std::numeric_limits<float>::denorm_min(), Format::e4m3), FLT_MIN);
  EXPECT_TRUE(std::isfinite(1.0f / scale_from_amax(1e-37f, Format::e4m3)));
  EXPECT_THROW(scale_from_amax(std::numeric_limits<float>::infinity(), Format::e4m3), Error);
  EXPECT_THROW(scale_from_amax(std::numeric_limits<float>::quiet_NaN(), Format::e4m3), Error);
}

TEST(Scaling, AmaxIgnoresSignAndNan) {
  const std::vector<float> values{1.0f, -5.0f, std::numeric_limits<float>::quiet_NaN(), 4.0f};
  EXPECT_EQ(amax(values.data(), values.size()), 5.0f);
  EXPECT_EQ(amax(values.data(), 0), 0.0f);
}

class ScalingFormat : public ::testing::TestWithParam<Format> {};

TEST_P(ScalingFormat, PerTensorRoundTrip) {
  const Format format = GetParam();
  const uint64_t seed = fresh_seed("per-tensor");
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  const size_t rows = 37, cols = 91;
  const std::vector<float> values = random_matrix(rows, cols, rng);
  const QuantizedMatrix matrix = quantize(values.data(), rows, cols, ScaleGranularity::per_tensor, format);
  ASSERT_EQ(matrix.scales.size(), 1u);
  ASSERT_EQ(matrix.codes.size(), rows * cols);
  const float tensor_amax = reference_amax(values, rows, cols, 0, rows, 0, cols);
  EXPECT_EQ(matrix.scales[0], tensor_amax / max_value(format));
  expect_round_trip_within_bounds(values, matrix, std::vector<float>(values.size(), tensor_amax));
}

TEST_P(ScalingFormat, PerRowRoundTripForChannelsAndTokens) {
  const Format format = GetParam();
  const uint64_t seed = fresh_seed("per-row");
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  const size_t rows = 12, cols = 203;
  std::vector<float> values = random_matrix(rows, cols, rng);
  // Rows of very different magnitude: one scale per row must follow each.
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) values[r * cols + c] *= std::pow(10.0f, static_cast<float>(r) - 6.0f);
  std::fill(values.begin() + 3 * cols, values.begin() + 4 * cols, 0.0f);

  for (ScaleGranularity granularity : {ScaleGranularity::per_output_channel, ScaleGranularity::per_token}) {
    const QuantizedMatrix matrix = quantize(values.data(), rows, cols, granularity, format);
    ASSERT_EQ(matrix.scales.size(), rows);
    std::vector<float> group_amax(values.size());
    for (size_t r = 0; r < rows; ++r) {
      const float row_amax = reference_amax(values, rows, cols, r, r + 1, 0, cols);
      EXPECT_EQ(matrix.scales[r], row_amax == 0.0f ? 1.0f : row_amax / max_value(format)) << "row " << r;
      std::fill(group_amax.begin() + r * cols, group_amax.begin() + (r + 1) * cols, row_amax);
    }
    expect_round_trip_within_bounds(values, matrix, group_amax);
    const std::vector<float> restored = dequantize(matrix);
    for (size_t c = 0; c < cols; ++c) EXPECT_EQ(restored[3 * cols + c], 0.0f) << "zero row, column " << c;
  }
}

TEST_P(ScalingFormat, BlockScalesOnOddShape) {
  const Format format = GetParam();
  const uint64_t seed = fresh_seed("block");
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  const size_t rows = 130, cols = 257;
  std::vector<float> values = random_matrix(rows, cols, rng);
  // Tile (1, 2) is rows 128..129 × column 256 only: make it all zero.
  values[128 * cols + 256] = 0.0f;
  values[129 * cols + 256] = 0.0f;
  // Tile (0, 1) gets a much larger magnitude than its neighbours.
  for (size_t r = 0; r < 128; ++r)
    for (size_t c = 128; c < 256; ++c) values[r * cols + c] *= 1000.0f;

  const QuantizedMatrix matrix = quantize(values.data(), rows, cols, ScaleGranularity::block_128x128, format);
  ASSERT_EQ(matrix.scales.size(), 2u * 3u);
  std::vector<float> group_amax(values.size());
  for (size_t br = 0; br < 2; ++br)
    for (size_t bc = 0; bc < 3; ++bc) {
      const float tile_amax = reference_amax(values, rows, cols, br * 128, br * 128 + 128, bc * 128, bc * 128 + 128);
      const float expected_scale = tile_amax == 0.0f ? 1.0f : tile_amax / max_value(format);
      EXPECT_EQ(matrix.scales[br * 3 + bc], expected_scale) << "tile " << br << "," << bc;
      EXPECT_EQ(matrix.scale_at(br * 128, bc * 128), expected_scale);
      for (size_t r = br * 128; r < std::min(rows, br * 128 + 128); ++r)
        for (size_t c = bc * 128; c < std::min(cols, bc * 128 + 128); ++c) group_amax[r * cols + c] = tile_amax;
    }
  EXPECT_EQ(matrix.scales[1 * 3 + 2], 1.0f);
  expect_round_trip_within_bounds(values, matrix, group_amax);
  const std::vector<float> restored = dequantize(matrix);
  EXPECT_EQ(restored[128 * cols + 256], 0.0f);
  EXPECT_EQ(restored[129 * cols + 256], 0.0f);
}

TEST_P(ScalingFormat, QuantizeRowMatchesPerTokenAndEncode) {
  const Format format = GetParam();
  const uint64_t seed = fresh_seed("quantize_row");
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  const size_t rows = 3, cols = 301;
  const std::vector<float> values = random_matrix(rows, cols, rng);
  const QuantizedMatrix per_token = quantize(values.data(), rows, cols, ScaleGranularity::per_token, format);
  for (size_t r = 0; r < rows; ++r) {
    std::vector<uint8_t> codes(cols);
    const float scale = quantize_row(values.data() + r * cols, cols, codes.data(), format);
    EXPECT_EQ(scale, reference_amax(values, rows, cols, r, r + 1, 0, cols) / max_value(format));
    EXPECT_EQ(scale, per_token.scales[r]);
    for (size_t c = 0; c < cols; ++c) {
      EXPECT_EQ(codes[c], per_token.codes[r * cols + c]);
      EXPECT_EQ(codes[c], encode(format, values[r * cols + c] * (1.0f / scale)));
    }
  }
  std::vector<float> zeros(cols, 0.0f);
  std::vector<uint8_t> codes(cols, 0xAA);
  EXPECT_EQ(quantize_row(zeros.data(), cols, codes.data(), format), 1.0f);
  for (uint8_t code : codes) EXPECT_EQ(decode(format, code), 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Formats, ScalingFormat, ::testing::Values(Format::e4m3, Format::e5m2),
                         [](const ::testing::TestParamInfo<Format>& info) {
                           return info.param == Format::e4m3 ? std::string("E4M3") : std::string("E5M2");
                         });

TEST(Scaling, AmaxElementLandsOnFormatMax) {
  const std::vector<float> values{0.25f, -3.0f, 1.5f};
  const QuantizedMatrix matrix = quantize(values.data(), 1, 3, ScaleGranularity::per_tensor);
  EXPECT_EQ(matrix.codes[1], 0xFE);  // -448
  EXPECT_FLOAT_EQ(dequantize(matrix)[1], -3.0f);
}

TEST(Scaling, EmptyMatrix) {
  const QuantizedMatrix matrix = quantize(nullptr, 0, 5, ScaleGranularity::block_128x128);
  EXPECT_TRUE(matrix.codes.empty());
  EXPECT_TRUE(dequantize(matrix).empty());
}

TEST(Scaling, RejectsInconsistentMatrices) {
  const std::vector<float> values(6, 1.0f);
  QuantizedMatrix matrix = quantize(values.data(), 2, 3, ScaleGranularity::per_token);
  EXPECT_THROW(matrix.scale_at(2, 0), Error);
  EXPECT_THROW(matrix.scale_at(0, 3), Error);
  QuantizedMatrix short_codes = matrix;
  short_codes.codes.pop_back();
  EXPECT_THROW(dequantize(short_codes), Error);
  QuantizedMatrix wrong_scales = matrix;
  wrong_scales.granularity = ScaleGranularity::per_tensor;
  EXPECT_THROW(dequantize(wrong_scales), Error);
  EXPECT_THROW(quantize(nullptr, 2, 3, ScaleGranularity::per_tensor), Error);
  std::vector<float> with_inf = values;
  with_inf[4] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(quantize(with_inf.data(), 2, 3, ScaleGranularity::per_tensor), Error);
}

}  // namespace
}  // namespace octet::fp8
