#include "fp8/scaling.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>

namespace octet::fp8 {
namespace {
constexpr size_t kBlock = 128;
size_t blocks(size_t n) { return (n + kBlock - 1) / kBlock; }
}  // namespace

float scale_from_amax(float amax_value, Format format) {
  // An all-zero (or non-finite) tensor gets scale 1 so that decoding stays finite and exact zeros
  // stay zeros.
  if (!(amax_value > 0.0f) || !std::isfinite(amax_value)) return 1.0f;
  return amax_value / max_value(format);
}

float amax(const float* values, size_t count) {
  float result = 0.0f;
  for (size_t i = 0; i < count; ++i) result = std::max(result, std::fabs(values[i]));
  return result;
}

float QuantizedMatrix::scale_at(size_t row, size_t col) const {
  switch (granularity) {
    case ScaleGranularity::per_tensor: return scales[0];
    case ScaleGranularity::per_output_channel:
    case ScaleGranularity::per_token: return scales[row];
    case ScaleGranularity::block_128x128: return scales[(row / kBlock) * blocks(cols) + col / kBlock];
  }
  return 1.0f;
}

QuantizedMatrix quantize(const float* values, size_t rows, size_t cols, ScaleGranularity granularity,
                         Format format) {
  QuantizedMatrix m;
  m.format = format;
  m.granularity = granularity;
  m.rows = rows;
  m.cols = cols;
  m.codes.resize(rows * cols);
  switch (granularity) {
    case ScaleGranularity::per_tensor:
      m.scales = {scale_from_amax(amax(values, rows * cols), format)};
      break;
    case ScaleGranularity::per_output_channel:
    case ScaleGranularity::per_token:
      m.scales.resize(rows);
      for (size_t r = 0; r < rows; ++r) m.scales[r] = scale_from_amax(amax(values + r * cols, cols), format);
      break;
    case ScaleGranularity::block_128x128: {
      const size_t block_cols = blocks(cols);
      m.scales.assign(blocks(rows) * block_cols, 0.0f);
      std::vector<float> block_amax(m.scales.size(), 0.0f);
      for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c) {
          float& a = block_amax[(r / kBlock) * block_cols + c / kBlock];
          a = std::max(a, std::fabs(values[r * cols + c]));
        }
      for (size_t i = 0; i < m.scales.size(); ++i) m.scales[i] = scale_from_amax(block_amax[i], format);
      break;
    }
  }
  if (granularity == ScaleGranularity::block_128x128) {
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c)
        m.codes[r * cols + c] = encode(format, values[r * cols + c] / m.scale_at(r, c));
  } else {
    for (size_t r = 0; r < rows; ++r)
      encode_scaled(format, values + r * cols, 1.0f / m.scale_at(r, 0), m.codes.data() + r * cols, cols);
  }
  return m;
}

std::vector<float> dequantize(const QuantizedMatrix& m) {
  std::vector<float> out(m.rows * m.cols);
  for (size_t r = 0; r < m.rows; ++r)
    for (size_t c = 0; c < m.cols; ++c) out[r * m.cols + c] = decode(m.format, m.codes[r * m.cols + c]) * m.scale_at(r, c);
  return out;
}

float quantize_row(const float* row, size_t cols, uint8_t* codes, Format format) {
  const float scale = scale_from_amax(amax(row, cols), format);
  encode_scaled(format, row, 1.0f / scale, codes, cols);
  return scale;
}

}  // namespace octet::fp8
