// validate_fp8_environment: what the machine offers (CUDA, GPUs, FP8 tensor cores, NCCL, memory)
// against what the configuration asks for (model, precision, context, tensor parallelism).
#include "backend/cpu/dot_kernels.h"
#include "backend/device.h"
#include "common/error.h"
#include "octet/doctor.h"
#include "runtime/model_shape.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace octet {
namespace {

std::string version_string(int v) { return v > 0 ? fmt::format("{}.{}", v / 1000, (v % 1000) / 10) : ""; }

bool nccl_loadable() {
  void* handle = dlopen("libnccl.so.2", RTLD_LAZY | RTLD_LOCAL);
  if (!handle) return false;
  dlclose(handle);
  return true;
}

uint64_t host_memory_available_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  std::string unit;
  while (meminfo >> key >> value >> unit)
    if (key == "MemAvailable:") return value * 1024;
  return 0;
}

std::string gib(uint64_t bytes) { return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1ull << 30)); }

}  // namespace

EnvironmentReport validate_fp8_environment(const Config& config) {
  EnvironmentReport r;
  bool blocking = false;  // a reason that leaves nothing to run locally
  auto add = [&](std::string reason, std::string fix, bool blocks) {
    r.reasons.push_back(std::move(reason));
    r.fixes.push_back(std::move(fix));
    blocking = blocking || blocks;
  };

  const backend::CudaStatus cuda = backend::probe_cuda();
  r.cuda_compiled = cuda.compiled;
  r.cuda_driver_version = version_string(cuda.driver_version);
  r.cuda_runtime_version = version_string(cuda.runtime_version);
  for (const auto& g : cuda.gpus)
    r.gpus.push_back({g.index, g.name, fmt::format("{}.{}", g.compute_major, g.compute_minor), g.total_memory_bytes,
                      g.free_memory_bytes, g.fp8_tensor_cores()});
  r.nccl_available = nccl_loadable();
  r.cpu_vector_unit = backend::cpu::dot_kernels_vector_unit();

  const Precision precision = config.llm.precision;
  const bool want_gpu = config.llm.device != Device::cpu;
  const bool gpu_usable = cuda.available && want_gpu;
  if (!cuda.compiled) {
    add(cuda.reason, "install the CUDA toolkit and rebuild (scripts/setup.sh) to use an NVIDIA GPU", false);
  } else if (!cuda.available && want_gpu) {
    add("CPU only: " + cuda.reason, "run on a machine with an NVIDIA GPU of compute capability 8.9 or newer", false);
  }
  if (gpu_usable && !cuda.gpus.front().fp8_tensor_cores() && precision == Precision::fp8)
    add(fmt::format("{} (compute {}.{}) has no FP8 tensor cores (8.9+ needed): fp8 would run on the CPU",
                    cuda.gpus.front().name, cuda.gpus.front().compute_major, cuda.gpus.front().compute_minor),
        "set llm.precision=bf16 to use this GPU", false);
  if (precision != Precision::fp8)
    add(fmt::format("precision is {}: FP8 is off", precision_name(precision)), "set llm.precision=fp8 (or USE_FP8=true)", false);
  const int tp = config.engine.tensor_parallel_size;
  if (tp > 1) {
    if (!r.nccl_available) add("tensor_parallel_size is " + std::to_string(tp) + " but NCCL (libnccl.so.2) is not installed",
                               "install NCCL or set engine.tensor_parallel_size=1", false);
    if (static_cast<int>(cuda.gpus.size()) < tp)
      add(fmt::format("tensor_parallel_size is {} but {} GPU(s) are present", tp, cuda.gpus.size()),
          fmt::format("set engine.tensor_parallel_size to at most {}", std::max<size_t>(cuda.gpus.size(), 1)), false);
  }

  r.model = config.llm.model.empty() ? default_model_path() : config.llm.model;
  std::optional<runtime::ModelShape> shape;
  try {
    shape = runtime::find_model_shape(config.llm.model);
    if (!shape)
      add("model " + r.model + " was not found (no file, and no known shape for that name)",
          "run scripts/setup.sh for the default model, or set llm.model (LLM_MODEL) to a GGUF file", true);
  } catch (const Error& e) {
    add(std::string("the model file cannot be read: ") + e.what(), "point llm.model at a valid GGUF file", true);
  }
  if (shape) {
    r.model_found = shape->weights_local;
    if (!shape->weights_local)
      add("the weights of " + r.model + " are not on this machine (shape known from " + shape->source + ")",
          "download the checkpoint and set llm.model to it, or use planner.mode=api", true);
    const auto& c = shape->config;
    const int64_t context = config.engine.max_context_length > 0 ? config.engine.max_context_length : std::min<int64_t>(c.context_length, 8192);
    const int kv_element = precision == Precision::fp8 && config.quantization.quantize_kv_cache ? 1 : precision == Precision::f32 ? 4 : 2;
    const uint64_t weights = precision == Precision::f32 ? static_cast<uint64_t>(c.parameter_count()) * 4
                                                         : runtime::weight_bytes(c, precision == Precision::fp8,
                                                                                 engine::vocab_storage(config.llm.embedding_precision,
                                                                                                       config.llm.lm_head_precision,
                                                                                                       shape->checkpoint_vocab_fp8));
    const uint64_t kv_per_token = runtime::kv_bytes_per_token(c, kv_element);
    r.model_bytes_needed = weights + kv_per_token * static_cast<uint64_t>(context);
    const bool runs_on_gpu = gpu_usable && (precision != Precision::fp8 || cuda.gpus.front().fp8_tensor_cores());
    if (runs_on_gpu) {
      const int gpus = std::max(1, std::min<int>(tp, static_cast<int>(cuda.gpus.size())));
      r.memory_available_bytes = static_cast<uint64_t>(static_cast<double>(cuda.gpus.front().total_memory_bytes) *
                                                       config.engine.gpu_memory_utilization) * static_cast<uint64_t>(gpus);
      r.device = gpus > 1 ? fmt::format("cuda:0-{}", gpus - 1) : "cuda:0";
    } else {
      r.memory_available_bytes = host_memory_available_bytes();
      r.device = "cpu";
      if (r.cpu_vector_unit == "scalar")
        add("the CPU engine was built without AVX2 or AVX-512 dot products: plain loops, about ten times slower",
            "build on a CPU with AVX2, FMA and F16C (scripts/setup.sh compiles for the host's vector units)", false);
    }
    r.model_fits = r.model_bytes_needed <= r.memory_available_bytes;
    if (!r.model_fits) {
      const int64_t largest = r.memory_available_bytes > weights ? static_cast<int64_t>((r.memory_available_bytes - weights) / kv_per_token) : 0;
      add(fmt::format("{} needs {} ({} of weights + KV cache for {} tokens); {} has {} for it", r.model, gib(r.model_bytes_needed),
                      gib(weights), context, r.device, gib(r.memory_available_bytes)),
          largest > 0 ? fmt::format("set engine.max_context_length to at most {} or add GPUs (engine.tensor_parallel_size)", largest)
                      : "use a machine with more memory, more GPUs (engine.tensor_parallel_size), or planner.mode=api",
          true);
    }
  }
  r.status = blocking ? "unavailable" : r.reasons.empty() ? "ready" : "degraded";
  return r;
}

std::string report_to_json(const EnvironmentReport& r) {
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& g : r.gpus)
    gpus.push_back({{"index", g.index}, {"name", g.name}, {"compute_capability", g.compute_capability},
                    {"total_memory_bytes", g.total_memory_bytes}, {"free_memory_bytes", g.free_memory_bytes},
                    {"fp8_tensor_cores", g.fp8_tensor_cores}});
  nlohmann::json j = {{"status", r.status}, {"reasons", r.reasons}, {"fixes", r.fixes},
                      {"cuda_compiled", r.cuda_compiled}, {"cuda_driver_version", r.cuda_driver_version},
                      {"cuda_runtime_version", r.cuda_runtime_version}, {"gpus", gpus},
                      {"nccl_available", r.nccl_available}, {"cpu_vector_unit", r.cpu_vector_unit}, {"model", r.model}, {"model_found", r.model_found},
                      {"model_bytes_needed", r.model_bytes_needed}, {"memory_available_bytes", r.memory_available_bytes},
                      {"model_fits", r.model_fits}, {"device", r.device}};
  return j.dump(2);
}

}  // namespace octet
