#pragma once
// A device copy of a host vector for tests that call CUDA launch wrappers directly; freed at scope
// exit. Without values it is poisoned: every byte 0xFF (a NaN float, an E4M3 NaN code).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

namespace octet::testing {

inline void expect_cuda(cudaError_t status, const char* what) {
  ASSERT_EQ(status, cudaSuccess) << what << ": " << cudaGetErrorString(status);
}

template <typename T>
struct DeviceVector {
  T* data = nullptr;
  size_t count = 0;
  explicit DeviceVector(size_t n, const std::vector<T>* values = nullptr) : count(n) {
    expect_cuda(cudaMalloc(&data, n * sizeof(T)), "cudaMalloc");
    if (values) expect_cuda(cudaMemcpy(data, values->data(), n * sizeof(T), cudaMemcpyHostToDevice), "upload");
    else expect_cuda(cudaMemset(data, 0xFF, n * sizeof(T)), "poison");
  }
  ~DeviceVector() { cudaFree(data); }
  DeviceVector(const DeviceVector&) = delete;
  DeviceVector& operator=(const DeviceVector&) = delete;
  // Waits for the device, then copies back.
  std::vector<T> host() const {
    std::vector<T> out(count);
    expect_cuda(cudaDeviceSynchronize(), "kernel");
    expect_cuda(cudaMemcpy(out.data(), data, count * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return out;
  }
};

}  // namespace octet::testing
