#pragma once
// What GPUs this process can use, the CUDA backend's factory and the device micro-benchmarks. All of
// it exists in every build: without the CUDA toolkit at build time (cuda_unavailable.cpp) the probe
// reports that CUDA is not compiled in and the rest throws octet::Error saying so.
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
  uint64_t l2_cache_bytes = 0;
  bool fp8_tensor_cores() const { return compute_major * 10 + compute_minor >= 89; }
  std::string compute_capability() const { return std::to_string(compute_major) + "." + std::to_string(compute_minor); }
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

// True when a GPU can be used; otherwise false with the reason in *why ("no NVIDIA GPU found", "this
// build of octet has no CUDA backend", ...).
inline bool cuda_device_available(std::string* why = nullptr) {
  CudaStatus status = probe_cuda();
  if (!status.available && why) *why = status.reason;
  return status.available;
}

// Throws octet::Error when no GPU can be used, when the GPU is older than the kernels' targets
// (compute capability 8.9), or when device_index does not exist.
std::unique_ptr<Backend> make_cuda_backend(int device_index);

// Ceilings measured on the device, for rooflines: a 1 GiB device-to-device copy (bytes read + written
// per second) and a cuBLASLt FP8 GEMM at 8192³ (FLOP/s). Median of repeated runs, events-timed.
double measure_copy_bandwidth_bytes_per_s(int device_index);
double measure_fp8_gemm_flops(int device_index);
// Bytes of device memory in use now (total − free), for peak-memory reports.
uint64_t device_memory_used_bytes(int device_index);

// The FP8 GEMV of the decode path on random E4M3 data: y [m, n] from x [m, k] and w [n, k], timed
// with CUDA events (median of 50 after warm-up), rotating among enough weight copies that L2 cannot
// serve them. bytes = n·k (weights) + m·k (activations) + 4·m·n (output).
struct GemvBenchResult {
  int64_t n = 0, k = 0, m = 0;
  int variant = 0;  // see gemv_variant() in backend/cuda/kernels.h; -1: the default choice
  std::string variant_name;
  double microseconds = 0;
  double bytes = 0;
  double gigabytes_per_s = 0;
  double max_relative_error = 0;  // sampled outputs vs float64 on the host, relative to Σ|x·w|
};
// variant -1 benchmarks the launcher's default choice.
GemvBenchResult bench_gemv_fp8(int device_index, int64_t n, int64_t k, int64_t m, int variant = -1);
// Number of GEMV variants bench_gemv_fp8 accepts (0 without CUDA).
int gemv_fp8_variants();

}  // namespace octet::backend
