#include "backend/cuda/staged_upload.h"

#include "backend/cuda/cuda_check.h"
#include "common/error.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

namespace octet::backend::cuda {
namespace {

constexpr int kFillThreads = 4;                     // page-faulting the mmap is the host's bottleneck
constexpr size_t kFillChunkBytes = size_t{1} << 20;  // per thread at least

size_t configured_buffer_bytes(size_t requested) {
  if (requested > 0) return requested;
  const char* value = std::getenv("OCTET_CUDA_STAGING_BYTES");
  if (value == nullptr || *value == '\0') return StagedUpload::kDefaultBufferBytes;
  char* end = nullptr;
  const unsigned long long bytes = std::strtoull(value, &end, 10);
  if (*end != '\0' || bytes == 0 || bytes > (uint64_t{1} << 34))
    fail("OCTET_CUDA_STAGING_BYTES={}: expected a byte count in [1, 2^34]", value);
  return static_cast<size_t>(bytes);
}

}  // namespace

StagedUpload::StagedUpload(size_t buffer_bytes) : buffer_bytes_(configured_buffer_bytes(buffer_bytes)), fill_pool_(kFillThreads) {
  OCTET_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  OCTET_CUDA_CHECK(cudaEventCreateWithFlags(&ordering_, cudaEventDisableTiming));
  for (int i = 0; i < 2; ++i) {
    OCTET_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned_[i]), buffer_bytes_));
    OCTET_CUDA_CHECK(cudaEventCreateWithFlags(&drained_[i], cudaEventDisableTiming));
  }
}

StagedUpload::~StagedUpload() {
  cudaStreamSynchronize(copy_stream_);
  for (int i = 0; i < 2; ++i) {
    cudaEventDestroy(drained_[i]);
    cudaFreeHost(pinned_[i]);
  }
  cudaEventDestroy(ordering_);
  cudaStreamDestroy(copy_stream_);
}

void StagedUpload::copy(const void* host, size_t bytes, void* device, cudaStream_t consumer) {
  if (bytes == 0) return;
  // The device bytes may be scratch that earlier work on consumer still reads.
  OCTET_CUDA_CHECK(cudaEventRecord(ordering_, consumer));
  OCTET_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, ordering_, 0));
  const auto* src = static_cast<const uint8_t*>(host);
  auto* dst = static_cast<uint8_t*>(device);
  int next = 0;
  for (size_t offset = 0; offset < bytes; offset += buffer_bytes_, next ^= 1) {
    const size_t n = std::min(buffer_bytes_, bytes - offset);
    // Wait until the copy engine has drained this buffer (the other one may still be in flight).
    if (in_flight_[next]) OCTET_CUDA_CHECK(cudaEventSynchronize(drained_[next]));
    uint8_t* staging = pinned_[next];
    fill_pool_.parallel_for(
        n, [&](size_t begin, size_t end) { std::memcpy(staging + begin, src + offset + begin, end - begin); },
        kFillChunkBytes);
    OCTET_CUDA_CHECK(cudaMemcpyAsync(dst + offset, staging, n, cudaMemcpyHostToDevice, copy_stream_));
    OCTET_CUDA_CHECK(cudaEventRecord(drained_[next], copy_stream_));
    in_flight_[next] = true;
  }
  OCTET_CUDA_CHECK(cudaEventRecord(ordering_, copy_stream_));
  OCTET_CUDA_CHECK(cudaStreamWaitEvent(consumer, ordering_, 0));
}

}  // namespace octet::backend::cuda
