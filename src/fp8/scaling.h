#pragma once
// Scaling of float tensors into FP8. A scale s maps real values to codes as code = encode(x / s), so
// x ≈ decode(code) * s; scales are chosen as amax / format_max (amax 0 gives scale 1).
#include "fp8/fp8.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace octet::fp8 {

enum class ScaleGranularity {
  per_tensor,          // one scale
  per_output_channel,  // one scale per row of a [rows, cols] weight (rows = output features)
  per_token,           // one scale per row of a [tokens, features] activation (dynamic)
  block_128x128,       // one scale per 128x128 tile: scales [ceil(rows/128), ceil(cols/128)]
};

struct QuantizedMatrix {
  Format format = Format::e4m3;
  ScaleGranularity granularity = ScaleGranularity::per_tensor;
  size_t rows = 0;
  size_t cols = 0;
  std::vector<uint8_t> codes;  // rows * cols, row-major
  std::vector<float> scales;   // 1, rows, or ceil(rows/128)*ceil(cols/128)

  // The scale that applies to element (row, col).
  float scale_at(size_t row, size_t col) const;
};

float scale_from_amax(float amax, Format format);
float amax(const float* values, size_t count);

QuantizedMatrix quantize(const float* values, size_t rows, size_t cols, ScaleGranularity granularity,
                         Format format = Format::e4m3);
std::vector<float> dequantize(const QuantizedMatrix& matrix);

// Encodes each row of a [rows, cols] matrix with a scale given per row (a checkpoint's weight scales):
// codes[r][c] = encode(values[r][c] / row_scales[r]). Values that are code × scale come back as the
// same code, since the quotient lands within a few float32 ulps of a 4-significant-bit number.
std::vector<uint8_t> encode_rows(const float* values, size_t rows, size_t cols, std::span<const float> row_scales,
                                 Format format = Format::e4m3);

// Dynamic per-token quantization of one activation row, the form used before each linear layer:
// returns the scale, writes cols codes.
float quantize_row(const float* row, size_t cols, uint8_t* codes, Format format = Format::e4m3);

}  // namespace octet::fp8
