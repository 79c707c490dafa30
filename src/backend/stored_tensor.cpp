// Host-side widening of stored tensors, and the defaults of Backend::make_linear_from_stored and
// make_embedding_from_stored: widen on the host and hand float32 to make_linear / make_embedding
// (backends override them to convert where they keep the weights).
#include "backend/stored_tensor.h"

#include "backend/backend.h"
#include "common/error.h"
#include "formats/safetensors.h"

#include <vector>

namespace octet::backend {
namespace {

safetensors::Dtype safetensors_dtype(StoredDtype dtype) {
  switch (dtype) {
    case StoredDtype::f32: return safetensors::Dtype::F32;
    case StoredDtype::f16: return safetensors::Dtype::F16;
    case StoredDtype::bf16: return safetensors::Dtype::BF16;
    case StoredDtype::e4m3: return safetensors::Dtype::F8_E4M3;
  }
  return safetensors::Dtype::F32;
}

}  // namespace

void widen_stored_rows(const StoredTensor& tensor, int64_t row_begin, int64_t row_end, float* out) {
  safetensors::widen_to_float(safetensors_dtype(tensor.dtype), tensor.row(row_begin),
                              static_cast<uint64_t>((row_end - row_begin) * tensor.cols), out);
}

std::unique_ptr<LinearWeight> Backend::make_linear_from_stored(const StoredTensor& weights, const LinearSpec& spec) {
  const auto rows = static_cast<size_t>(weights.rows), cols = static_cast<size_t>(weights.cols);
  if (weights.dtype == StoredDtype::e4m3) {
    if (spec.weight_scales.size() != rows)
      fail("make_linear_from_stored: E4M3 codes of {} rows need {} weight scales, got {}", rows, rows,
           spec.weight_scales.size());
    if (spec.format == LinearFormat::fp8)
      return make_fp8_linear(static_cast<const uint8_t*>(weights.data), spec.weight_scales.data(), weights.rows,
                             weights.cols, spec);
    std::vector<float> values(rows * cols);
    for (size_t row = 0; row < rows; ++row)
      fp8::decode_scaled(fp8::Format::e4m3, weights.row(static_cast<int64_t>(row)), spec.weight_scales[row],
                         values.data() + row * cols, cols);
    LinearSpec widened = spec;
    widened.weight_scales = {};
    return make_linear(values.data(), weights.rows, weights.cols, widened);
  }
  std::vector<float> values(rows * cols);
  widen_stored_rows(weights, 0, weights.rows, values.data());
  return make_linear(values.data(), weights.rows, weights.cols, spec);
}

std::unique_ptr<EmbeddingTable> Backend::make_embedding_from_stored(const StoredTensor& table, EmbeddingFormat format) {
  if (table.dtype == StoredDtype::e4m3) fail("make_embedding_from_stored: an embedding table needs float values, not E4M3 codes");
  std::vector<float> values(static_cast<size_t>(table.rows * table.cols));
  widen_stored_rows(table, 0, table.rows, values.data());
  return make_embedding(values.data(), table.rows, table.cols, format);
}

}  // namespace octet::backend
