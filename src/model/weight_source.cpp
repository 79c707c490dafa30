#include "model/weight_source.h"

#include "fp8/fp8.h"

namespace octet::model {

std::vector<float> LinearWeights::dequantized() const {
  const size_t rows = channel_scales.size(), cols = rows ? e4m3_codes.size() / rows : 0;
  std::vector<float> out(e4m3_codes.size());
  for (size_t row = 0; row < rows; ++row)
    fp8::decode_scaled(fp8::Format::e4m3, e4m3_codes.data() + row * cols, channel_scales[row], out.data() + row * cols,
                       cols);
  return out;
}

LinearWeights WeightSource::load_linear(const std::string& module, int64_t out_features, int64_t in_features) const {
  LinearWeights weights;
  weights.values = load(module + ".weight", {out_features, in_features});
  return weights;
}

}  // namespace octet::model
