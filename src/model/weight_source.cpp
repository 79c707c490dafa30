#include "model/weight_source.h"

#include "fp8/fp8.h"

namespace octet::model {

std::vector<float> LinearWeights::dequantized() const {
  const bool mapped = stored && stored->dtype == backend::StoredDtype::e4m3;
  const uint8_t* codes = mapped ? static_cast<const uint8_t*>(stored->data) : e4m3_codes.data();
  const size_t count = mapped ? stored->bytes() : e4m3_codes.size();
  const size_t rows = channel_scales.size(), cols = rows ? count / rows : 0;
  std::vector<float> out(count);
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
