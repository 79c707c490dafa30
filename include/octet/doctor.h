#pragma once
// Can this machine run the configured model in FP8, and how well? `octet doctor [--json]`.
#include "octet/config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace octet {

struct GpuReport {
  int index = 0;
  std::string name;
  std::string compute_capability;  // "9.0"
  uint64_t total_memory_bytes = 0;
  uint64_t free_memory_bytes = 0;
  bool fp8_tensor_cores = false;  // compute capability ≥ 8.9
};

struct EnvironmentReport {
  std::string status;                // "ready" | "degraded" | "unavailable"
  std::vector<std::string> reasons;  // why not ready (empty when ready)
  std::vector<std::string> fixes;    // one suggestion per reason, same order
  bool cuda_compiled = false;
  std::string cuda_driver_version;   // "13.0", "" when no driver
  std::string cuda_runtime_version;
  std::vector<GpuReport> gpus;
  bool nccl_available = false;       // libnccl loadable: tensor parallelism possible
  std::string cpu_vector_unit;       // the CPU engine's dot products: "avx512", "avx2" or "scalar"
  std::string model;                 // what was checked
  bool model_found = false;
  uint64_t model_bytes_needed = 0;   // weights + KV cache at the configured context, in the configured precision
  uint64_t memory_available_bytes = 0;  // on the device that would run it (GPU share or host RAM)
  bool model_fits = false;
  std::string device;                // where the model would run: "cuda:0" or "cpu"
};

EnvironmentReport validate_fp8_environment(const Config& config);
std::string report_to_json(const EnvironmentReport& report);  // {"status", "reasons", "fixes", …}

}  // namespace octet
