// What GPUs this process sees: used by the CLI (device selection, `octet info`) and by the tests to
// skip cleanly on machines without one.
#include "backend/cuda/cuda_check.h"
#include "backend/device.h"

namespace octet::backend {

CudaStatus probe_cuda() {
  CudaStatus status;
  status.compiled = true;
  cudaDriverGetVersion(&status.driver_version);
  cudaRuntimeGetVersion(&status.runtime_version);
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess || count == 0) {
    status.reason = error != cudaSuccess ? std::string("no usable NVIDIA GPU: ") + cudaGetErrorString(error)
                                         : "no NVIDIA GPU found";
    cudaGetLastError();  // clear the error so later calls start clean
    return status;
  }
  int current = 0;
  const bool restore = cudaGetDevice(&current) == cudaSuccess;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp props{};
    if (cudaGetDeviceProperties(&props, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    GpuInfo gpu;
    gpu.index = i;
    gpu.name = props.name;
    gpu.compute_major = props.major;
    gpu.compute_minor = props.minor;
    gpu.multiprocessors = props.multiProcessorCount;
    gpu.total_memory_bytes = props.totalGlobalMem;
    gpu.l2_cache_bytes = static_cast<uint64_t>(props.l2CacheSize);
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      gpu.free_memory_bytes = free_bytes;
    else
      cudaGetLastError();
    status.gpus.push_back(gpu);
  }
  if (restore) cudaSetDevice(current);
  status.available = !status.gpus.empty();
  if (!status.available) status.reason = "no NVIDIA GPU could be queried";
  return status;
}

uint64_t device_memory_used_bytes(int device_index) {
  OCTET_CUDA_CHECK(cudaSetDevice(device_index));
  size_t free_bytes = 0, total_bytes = 0;
  OCTET_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return total_bytes - free_bytes;
}

}  // namespace octet::backend
