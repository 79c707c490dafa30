#include "fp8/scaling.h"

#include "common/error.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

namespace octet::fp8 {
namespace {

constexpr size_t kBlock = 128;

size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

size_t expected_scale_count(ScaleGranularity granularity, size_t rows, size_t cols) {
  switch (granularity) {
    case ScaleGranularity::per_tensor: return 1;
    case ScaleGranularity::per_output_channel:
    case ScaleGranularity::per_token: return rows;
    case ScaleGranularity::block_128x128: return ceil_div(rows, kBlock) * ceil_div(cols, kBlock);
  }
  fail("invalid scale granularity {}", static_cast<int>(granularity));
}

// Each row is its own scale group; weights (per output channel) and activations (per token) only
// differ in when this runs.
void quantize_rows(const float* values, size_t rows, size_t cols, Format format, uint8_t* codes,
                   float* scales) {
  for (size_t row = 0; row < rows; ++row)
    scales[row] = quantize_row(values + row * cols, cols, codes + row * cols, format);
}

void quantize_blocks(const float* values, size_t rows, size_t cols, Format format, uint8_t* codes,
                     float* scales) {
  const size_t block_cols = ceil_div(cols, kBlock);
  for (size_t block_row = 0; block_row < ceil_div(rows, kBlock); ++block_row) {
    const size_t row_begin = block_row * kBlock;
    const size_t row_end = std::min(rows, row_begin + kBlock);
    for (size_t block_col = 0; block_col < block_cols; ++block_col) {
      const size_t col_begin = block_col * kBlock;
      const size_t width = std::min(cols, col_begin + kBlock) - col_begin;
      float tile_amax = 0.0f;
      for (size_t row = row_begin; row < row_end; ++row)
        tile_amax = std::max(tile_amax, amax(values + row * cols + col_begin, width));
      const float scale = scale_from_amax(tile_amax, format);
      scales[block_row * block_cols + block_col] = scale;
      for (size_t row = row_begin; row < row_end; ++row)
        encode_scaled(format, values + row * cols + col_begin, 1.0f / scale, codes + row * cols + col_begin, width);
    }
  }
}

}  // namespace

float QuantizedMatrix::scale_at(size_t row, size_t col) const {
  if (row >= rows || col >= cols)
    fail("scale_at({}, {}) is outside a {}x{} quantized matrix", row, col, rows, cols);
  if (scales.size() != expected_scale_count(granularity, rows, cols))
    fail("quantized {}x{} matrix holds {} scales, expected {}", rows, cols, scales.size(),
         expected_scale_count(granularity, rows, cols));
  switch (granularity) {
    case ScaleGranularity::per_tensor: return scales[0];
    case ScaleGranularity::per_output_channel:
    case ScaleGranularity::per_token: return scales[row];
    case ScaleGranularity::block_128x128: return scales[(row / kBlock) * ceil_div(cols, kBlock) + col / kBlock];
  }
  fail("invalid scale granularity {}", static_cast<int>(granularity));
}

// amax 0 (an all-zero group) gives 1 so that decoding yields zeros and 1/scale stays finite. A tiny
// amax would give a subnormal (or zero) scale whose inverse overflows, so scales are kept at least
// FLT_MIN; only groups with amax < 448 * FLT_MIN (about 5e-36) see that clamp. A non-finite amax
// means the tensor already holds inf or NaN, which no scale can represent: that is an error.
float scale_from_amax(float amax, Format format) {
  if (!std::isfinite(amax)) fail("cannot choose an FP8 scale for a tensor whose amax is {}", amax);
  if (amax == 0.0f) return 1.0f;
  return std::max(std::fabs(amax) / max_value(format), FLT_MIN);
}

// NaN compares false and is skipped here (it still encodes to a NaN code); infinities propagate
// into the result so that scale_from_amax reports them.
float amax(const float* values, size_t count) {
  float result = 0.0f;
  for (size_t i = 0; i < count; ++i) {
    const float magnitude = std::fabs(values[i]);
    result = magnitude > result ? magnitude : result;
  }
  return result;
}

QuantizedMatrix quantize(const float* values, size_t rows, size_t cols, ScaleGranularity granularity,
                         Format format) {
  QuantizedMatrix matrix;
  matrix.format = format;
  matrix.granularity = granularity;
  matrix.rows = rows;
  matrix.cols = cols;
  if (rows != 0 && cols > SIZE_MAX / rows) fail("quantize: {}x{} matrix is too large", rows, cols);
  const size_t count = rows * cols;
  if (count != 0 && values == nullptr) fail("quantize: null input for a {}x{} matrix", rows, cols);
  matrix.codes.resize(count);
  matrix.scales.resize(expected_scale_count(granularity, rows, cols));
  switch (granularity) {
    case ScaleGranularity::per_tensor:
      matrix.scales[0] = scale_from_amax(amax(values, count), format);
      encode_scaled(format, values, 1.0f / matrix.scales[0], matrix.codes.data(), count);
      break;
    case ScaleGranularity::per_output_channel:
    case ScaleGranularity::per_token:
      quantize_rows(values, rows, cols, format, matrix.codes.data(), matrix.scales.data());
      break;
    case ScaleGranularity::block_128x128:
      quantize_blocks(values, rows, cols, format, matrix.codes.data(), matrix.scales.data());
      break;
  }
  return matrix;
}

std::vector<float> dequantize(const QuantizedMatrix& matrix) {
  const size_t rows = matrix.rows;
  const size_t cols = matrix.cols;
  if (rows != 0 && cols > SIZE_MAX / rows) fail("dequantize: {}x{} matrix is too large", rows, cols);
  if (matrix.codes.size() != rows * cols)
    fail("dequantize: {}x{} matrix holds {} codes, expected {}", rows, cols, matrix.codes.size(), rows * cols);
  const size_t scale_count = expected_scale_count(matrix.granularity, rows, cols);
  if (matrix.scales.size() != scale_count)
    fail("dequantize: {}x{} matrix holds {} scales, expected {}", rows, cols, matrix.scales.size(), scale_count);

  std::vector<float> values(rows * cols);
  const uint8_t* codes = matrix.codes.data();
  switch (matrix.granularity) {
    case ScaleGranularity::per_tensor:
      decode_scaled(matrix.format, codes, matrix.scales[0], values.data(), rows * cols);
      break;
    case ScaleGranularity::per_output_channel:
    case ScaleGranularity::per_token:
      for (size_t row = 0; row < rows; ++row)
        decode_scaled(matrix.format, codes + row * cols, matrix.scales[row], values.data() + row * cols, cols);
      break;
    case ScaleGranularity::block_128x128: {
      const size_t block_cols = ceil_div(cols, kBlock);
      for (size_t row = 0; row < rows; ++row)
        for (size_t block_col = 0; block_col < block_cols; ++block_col) {
          const size_t begin = row * cols + block_col * kBlock;
          const size_t width = std::min(cols - block_col * kBlock, kBlock);
          decode_scaled(matrix.format, codes + begin, matrix.scales[(row / kBlock) * block_cols + block_col],
                        values.data() + begin, width);
        }
      break;
    }
  }
  return values;
}

float quantize_row(const float* row, size_t cols, uint8_t* codes, Format format) {
  const float scale = scale_from_amax(amax(row, cols), format);
  encode_scaled(format, row, 1.0f / scale, codes, cols);
  return scale;
}

std::vector<uint8_t> encode_rows(const float* values, size_t rows, size_t cols, std::span<const float> row_scales,
                                 Format format) {
  if (row_scales.size() != rows) fail("encode_rows: {} scales for {} rows", row_scales.size(), rows);
  std::vector<uint8_t> codes(rows * cols);
  for (size_t row = 0; row < rows; ++row) {
    const float scale = row_scales[row];
    if (!std::isfinite(scale) || scale < FLT_MIN)
      fail("encode_rows: scale of row {} is {}, expected a positive normal float", row, scale);
    encode_scaled(format, values + row * cols, 1.0f / scale, codes.data() + row * cols, cols);
  }
  return codes;
}

}  // namespace octet::fp8
