#pragma once
// Host → device copies of checkpoint bytes (the mmap) through two pinned staging buffers: the host
// fills one (page faults and all, split over a few threads) while the copy engine drains the other
// on its own stream, so reading the file and the PCIe copy overlap. Host memory used: the two
// buffers, whatever the tensor's size.
#include "common/thread_pool.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace octet::backend::cuda {

class StagedUpload {
 public:
  static constexpr size_t kDefaultBufferBytes = size_t{64} << 20;
  // buffer_bytes 0: OCTET_CUDA_STAGING_BYTES if set (tests use small buffers), else the default.
  explicit StagedUpload(size_t buffer_bytes = 0);
  ~StagedUpload();
  StagedUpload(const StagedUpload&) = delete;
  StagedUpload& operator=(const StagedUpload&) = delete;

  size_t buffer_bytes() const { return buffer_bytes_; }
  // Copies bytes from host to device. The copies start after the work queued on consumer so far
  // (which may still read device), and work queued on consumer after this call runs after them;
  // returns when host may be released (every byte is in a staging buffer or on the device).
  void copy(const void* host, size_t bytes, void* device, cudaStream_t consumer);

 private:
  size_t buffer_bytes_;
  cudaStream_t copy_stream_ = nullptr;
  uint8_t* pinned_[2] = {nullptr, nullptr};
  cudaEvent_t drained_[2] = {nullptr, nullptr};  // recorded after the copy out of pinned_[i]
  bool in_flight_[2] = {false, false};
  cudaEvent_t ordering_ = nullptr;
  ThreadPool fill_pool_;
};

}  // namespace octet::backend::cuda
