// Device ceilings for rooflines, measured rather than taken from a datasheet.
#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_buffer.h"
#include "backend/cuda/kernels.h"
#include "backend/device.h"

#include <algorithm>
#include <vector>

namespace octet::backend {
namespace {

class EventTimer {
 public:
  EventTimer() {
    OCTET_CUDA_CHECK(cudaEventCreate(&start_));
    OCTET_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  template <typename Work>
  double median_seconds(Work&& work, int warmup, int repeats, cudaStream_t stream) {
    for (int i = 0; i < warmup; ++i) work();
    std::vector<float> ms;
    for (int i = 0; i < repeats; ++i) {
      OCTET_CUDA_CHECK(cudaEventRecord(start_, stream));
      work();
      OCTET_CUDA_CHECK(cudaEventRecord(stop_, stream));
      OCTET_CUDA_CHECK(cudaEventSynchronize(stop_));
      float elapsed = 0;
      OCTET_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start_, stop_));
      ms.push_back(elapsed);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2] / 1000.0;
  }

 private:
  cudaEvent_t start_, stop_;
};

}  // namespace

double measure_copy_bandwidth_bytes_per_s(int device_index) {
  OCTET_CUDA_CHECK(cudaSetDevice(device_index));
  const size_t bytes = size_t{1} << 30;
  cuda::DeviceBuffer<uint8_t> source(bytes), destination(bytes);
  OCTET_CUDA_CHECK(cudaMemset(source.data(), 1, bytes));
  EventTimer timer;
  const double seconds = timer.median_seconds(
      [&] { OCTET_CUDA_CHECK(cudaMemcpyAsync(destination.data(), source.data(), bytes, cudaMemcpyDeviceToDevice, nullptr)); },
      3, 20, nullptr);
  return 2.0 * static_cast<double>(bytes) / seconds;
}

double measure_fp8_gemm_flops(int device_index) {
  OCTET_CUDA_CHECK(cudaSetDevice(device_index));
  const int64_t n = 8192;
  cuda::DeviceBuffer<uint8_t> a(static_cast<size_t>(n * n)), b(static_cast<size_t>(n * n));
  cuda::DeviceBuffer<float> out(static_cast<size_t>(n * n));
  cuda::launch_random_e4m3(a.data(), n * n, 11, nullptr);  // random data: zeros run faster than real inputs
  cuda::launch_random_e4m3(b.data(), n * n, 12, nullptr);
  cuda::CublasLtGemm gemm;
  EventTimer timer;
  bool ran = true;
  const double seconds = timer.median_seconds(
      [&] { ran = ran && gemm.run(cuda::GemmType::e4m3, a.data(), b.data(), out.data(), n, n, n, nullptr); }, 3, 10, nullptr);
  if (!ran) fail("cuBLASLt found no FP8 algorithm for an 8192³ product");
  return 2.0 * static_cast<double>(n) * n * n / seconds;
}

uint64_t device_memory_used_bytes(int device_index) {
  OCTET_CUDA_CHECK(cudaSetDevice(device_index));
  size_t free_bytes = 0, total_bytes = 0;
  OCTET_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return total_bytes - free_bytes;
}

}  // namespace octet::backend
