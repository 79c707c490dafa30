#pragma once
// Owning device allocation (cudaMalloc), moved, never copied. Host copies are stream-ordered; from
// pageable host memory cudaMemcpyAsync returns once the data is staged, so the host array may change
// or die right after upload() returns.
#include "backend/cuda/cuda_check.h"

#include <cstddef>
#include <utility>

namespace octet::backend::cuda {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count == 0) return;
    const cudaError_t status = cudaMalloc(&data_, count * sizeof(T));
    if (status != cudaSuccess) {
      cudaGetLastError();  // out of memory is not sticky; clear it for the next call
      data_ = nullptr;
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      fail("CUDA: cannot allocate {:.1f} MiB of device memory ({}; {:.1f} of {:.1f} GiB free)",
           static_cast<double>(count * sizeof(T)) / (1 << 20), cudaGetErrorString(status),
           static_cast<double>(free_bytes) / (1 << 30), static_cast<double>(total_bytes) / (1 << 30));
    }
  }
  ~DeviceBuffer() {
    if (data_) cudaFree(data_);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() const { return data_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

  void upload(const T* host, size_t count, cudaStream_t stream, size_t offset = 0) {
    if (offset + count > count_) fail("CUDA upload of {} elements at {} into a buffer of {}", count, offset, count_);
    if (count > 0)
      OCTET_CUDA_CHECK(cudaMemcpyAsync(data_ + offset, host, count * sizeof(T), cudaMemcpyHostToDevice, stream));
  }
  void zero(cudaStream_t stream) {
    if (count_ > 0) OCTET_CUDA_CHECK(cudaMemsetAsync(data_, 0, bytes(), stream));
  }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace octet::backend::cuda
