#pragma once
// Operands of the FP8 products on the device, for kernel-level tests of the GEMV and the skinny GEMM:
// random E4M3 rows with one scale each (weights with their channel scales, or inputs with their
// row scales), and a GemvGroup of weights with fresh outputs poisoned with NaN.
#include "backend/cuda/kernels.h"
#include "support/device_vector.h"
#include "support/random.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace octet::testing {

struct DeviceFp8Rows {
  int64_t n = 0;  // rows, each of k codes
  std::unique_ptr<DeviceVector<uint8_t>> codes;
  std::unique_ptr<DeviceVector<float>> scales;
};

// Codes over the finite E4M3 range, scales in [0.001, 0.01).
inline DeviceFp8Rows random_device_fp8_rows(std::mt19937_64& rng, int64_t n, int64_t k) {
  const auto codes = random_e4m3_codes(rng, static_cast<size_t>(n * k));
  const auto scales = random_fp8_scales(rng, static_cast<size_t>(n));
  DeviceFp8Rows rows;
  rows.n = n;
  rows.codes = std::make_unique<DeviceVector<uint8_t>>(codes.size(), &codes);
  rows.scales = std::make_unique<DeviceVector<float>>(scales.size(), &scales);
  return rows;
}

// The weights as one group, member i writing `rows` × weights[i]->n floats into outs[i].
struct GemvGroupWithOutputs {
  backend::cuda::GemvGroup group;
  std::vector<std::unique_ptr<DeviceVector<float>>> outs;
};

inline GemvGroupWithOutputs group_with_outputs(const std::vector<const DeviceFp8Rows*>& weights, int64_t rows) {
  GemvGroupWithOutputs result;
  result.group.count = static_cast<int>(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    result.outs.push_back(std::make_unique<DeviceVector<float>>(static_cast<size_t>(rows * weights[i]->n)));
    result.group.w[i] = weights[i]->codes->data;
    result.group.col_scales[i] = weights[i]->scales->data;
    result.group.y[i] = result.outs.back()->data;
    result.group.n[i] = weights[i]->n;
  }
  return result;
}

// One weight as a group of one, writing into y.
inline backend::cuda::GemvGroup one_weight_group(const DeviceFp8Rows& w, float* y) {
  backend::cuda::GemvGroup group;
  group.count = 1;
  group.w[0] = w.codes->data;
  group.col_scales[0] = w.scales->data;
  group.y[0] = y;
  group.n[0] = w.n;
  return group;
}

// The plain kernel's product (launch_matmul_e4m3_simple) of `rows` input codes and row scales with w,
// the reference of the fast kernels' tests.
inline std::vector<double> plain_product(const uint8_t* x, const float* row_scales, int64_t rows, const DeviceFp8Rows& w,
                                         int64_t k) {
  DeviceVector<float> want(static_cast<size_t>(rows * w.n));
  backend::cuda::launch_matmul_e4m3_simple(x, row_scales, rows, w.codes->data, w.scales->data, w.n, k, want.data, nullptr);
  const auto values = want.host();
  return std::vector<double>(values.begin(), values.end());
}

// Each member's output, after the device is done; an element still NaN (unwritten) fails the test,
// saying `where`.
inline std::vector<std::vector<float>> download_outputs(const GemvGroupWithOutputs& product, const std::string& where) {
  std::vector<std::vector<float>> results;
  for (size_t i = 0; i < product.outs.size(); ++i) {
    results.push_back(product.outs[i]->host());
    for (float v : results.back()) {
      if (std::isnan(v)) {
        ADD_FAILURE() << "unwritten output of member " << i << ", " << where;
        break;
      }
    }
  }
  return results;
}

}  // namespace octet::testing
