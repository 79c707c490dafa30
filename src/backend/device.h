#pragma once
// What GPUs this process can use, and the CUDA backend's factory. Both exist in every build: without
// the CUDA toolkit at build time they report that CUDA is not compiled in.
#include "backend/backend.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace octet::backend {

struct GpuInfo {
  int index = 0;
  std::string name;
  int compute_major = 0;
  int compute_minor = 0;
  int multiprocessors = 0;
  uint64_t total_memory_bytes = 0;
  uint64_t free_memory_bytes = 0;
  bool fp8_tensor_cores() const { return compute_major * 10 + compute_minor >= 89; }
};

struct CudaStatus {
  bool compiled = false;   // this build has the CUDA backend
  bool available = false;  // a GPU can be used now
  std::string reason;      // why not, when !available
  int driver_version = 0;  // e.g. 13000
  int runtime_version = 0;
  std::vector<GpuInfo> gpus;
};

CudaStatus probe_cuda();

// Ceilings measured on the device, for rooflines: a 1 GiB device-to-device copy (bytes read + written
// per second) and a cuBLASLt FP8 GEMM at 8192³ (FLOP/s). Median of repeated runs, events-timed.
double measure_copy_bandwidth_bytes_per_s(int device_index);
double measure_fp8_gemm_flops(int device_index);
// Bytes of device memory in use now (total − free), for peak-memory reports.
uint64_t device_memory_used_bytes(int device_index);

// Throws octet::Error when no GPU can be used, or when FP8 is asked of a GPU below compute 8.9.
// numerics reproducible: the kernels of cuda/reproducible.cu, the same bits as the CPU backend's.
std::unique_ptr<Backend> make_cuda_backend(int device_index, Numerics numerics = Numerics::fast);

}  // namespace octet::backend
