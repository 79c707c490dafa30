#include "model/weight_source.h"

#include "backend/backend.h"
#include "fp8/fp8.h"

#include <algorithm>

namespace octet::model {

std::vector<float> LinearWeights::dequantized(int64_t in_features) const {
  const bool mapped = stored && stored->dtype == backend::StoredDtype::e4m3;
  const uint8_t* codes = mapped ? static_cast<const uint8_t*>(stored->data) : e4m3_codes.data();
  const size_t count = mapped ? stored->bytes() : e4m3_codes.size();
  const auto cols = static_cast<size_t>(in_features);
  const size_t rows = cols ? count / cols : 0;
  std::vector<float> out(count);
  if (!block_scales.empty()) {
    const auto block = static_cast<size_t>(backend::kFp8ScaleBlock);
    const auto k_blocks = static_cast<size_t>(backend::fp8_scale_blocks(in_features));
    for (size_t row = 0; row < rows; ++row)
      for (size_t first = 0; first < cols; first += block)
        fp8::decode_scaled(fp8::Format::e4m3, codes + row * cols + first, block_scales[row / block * k_blocks + first / block],
                           out.data() + row * cols + first, std::min(block, cols - first));
    return out;
  }
  for (size_t row = 0; row < rows; ++row)
    fp8::decode_scaled(fp8::Format::e4m3, codes + row * cols, channel_scales[row], out.data() + row * cols, cols);
  return out;
}

LinearWeights WeightSource::load_linear(const std::string& module, int64_t out_features, int64_t in_features) const {
  LinearWeights weights;
  weights.values = load(module + ".weight", {out_features, in_features});
  return weights;
}

}  // namespace octet::model
