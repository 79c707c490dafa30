#include "quantize/calibration_backend.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace octet::quantize {

CalibrationBackend::CalibrationBackend(backend::Backend& inner, int64_t layers)
    : inner_(inner), k_amax_(static_cast<size_t>(layers), 0.0f), v_amax_(static_cast<size_t>(layers), 0.0f) {}

float CalibrationBackend::amax(const backend::Activations& a) {
  rows_.resize(static_cast<size_t>(a.rows));
  std::iota(rows_.begin(), rows_.end(), 0);
  host_.resize(static_cast<size_t>(a.rows * a.cols));
  inner_.copy_rows_to_host(a, rows_, host_.data());
  float m = 0;
  for (float v : host_) m = std::max(m, std::fabs(v));
  return m;
}

void CalibrationBackend::linear(const backend::Activations& x, const backend::LinearWeight& weight, backend::Activations& out) {
  float& seen = input_amax_[&weight];
  seen = std::max(seen, amax(x));
  inner_.linear(x, weight, out);
}

void CalibrationBackend::kv_write(backend::KvCache& cache, int64_t layer, const backend::TokenBatch& batch,
                                  const backend::Activations& k, const backend::Activations& v) {
  // K after RoPE, as the cache stores it.
  k_amax_[static_cast<size_t>(layer)] = std::max(k_amax_[static_cast<size_t>(layer)], amax(k));
  v_amax_[static_cast<size_t>(layer)] = std::max(v_amax_[static_cast<size_t>(layer)], amax(v));
  inner_.kv_write(cache, layer, batch, k, v);
}

}  // namespace octet::quantize
