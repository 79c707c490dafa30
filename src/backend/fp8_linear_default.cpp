// The host-side default of Backend::make_fp8_linear: widen the checkpoint's codes and hand them to
// make_linear with the checkpoint's scales, which re-encodes exactly the same codes. Block-scaled
// layers have no such exact route through make_linear, so their default refuses.
#include "backend/backend.h"
#include "common/error.h"

#include <vector>

namespace octet::backend {

std::unique_ptr<LinearWeight> Backend::make_fp8_linear(const uint8_t* e4m3_codes, const float* channel_scales,
                                                       int64_t out_features, int64_t in_features,
                                                       const LinearSpec& spec) {
  if (spec.format != LinearFormat::fp8) fail("make_fp8_linear: the layer format must be fp8");
  const auto rows = static_cast<size_t>(out_features), cols = static_cast<size_t>(in_features);
  std::vector<float> values(rows * cols);
  for (size_t row = 0; row < rows; ++row)
    fp8::decode_scaled(fp8::Format::e4m3, e4m3_codes + row * cols, channel_scales[row], values.data() + row * cols, cols);
  LinearSpec with_scales = spec;
  with_scales.weight_scales = std::span<const float>(channel_scales, rows);
  return make_linear(values.data(), out_features, in_features, with_scales);
}

std::unique_ptr<LinearWeight> Backend::make_fp8_block_linear(const uint8_t*, const float*, int64_t out_features,
                                                             int64_t in_features, const LinearSpec&) {
  fail("backend '{}' cannot multiply FP8 weights with 128x128 block scales ([{}, {}] layer); use the cpu or cuda backend",
       name(), out_features, in_features);
}

}  // namespace octet::backend
