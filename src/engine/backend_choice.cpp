#include "engine/backend_choice.h"

#include "common/error.h"

namespace octet::engine {

BackendChoice decide_backend(Device device, Precision precision, const backend::CudaStatus& cuda) {
  BackendChoice choice;
  if (device == Device::cpu) return choice;
  if (device == Device::cuda) {
    choice.cuda = true;
    if (!cuda.available || cuda.gpus.empty()) return choice;  // the factory reports why
    const backend::GpuInfo& gpu = cuda.gpus.front();
    if (precision == Precision::fp8 && !gpu.fp8_tensor_cores())
      fail("--device cuda: FP8 needs an NVIDIA GPU of compute capability 8.9 or newer (Ada, Hopper, Blackwell); {} is "
           "{}.{}: use --precision bf16 on this GPU, or --device cpu for fp8",
           gpu.name, gpu.compute_major, gpu.compute_minor);
    choice.gpu_index = gpu.index;
    return choice;
  }
  if (!cuda.available || cuda.gpus.empty()) return choice;  // auto without a GPU: the CPU, as expected
  const backend::GpuInfo& gpu = cuda.gpus.front();
  if (precision == Precision::fp8 && !gpu.fp8_tensor_cores()) {
    choice.notice = fmt::format("{} (compute {}.{}) has no FP8 tensor cores (8.9+ needed): running fp8 on the CPU; "
                                "--precision bf16 runs on the GPU",
                                gpu.name, gpu.compute_major, gpu.compute_minor);
    return choice;
  }
  choice.cuda = true;
  choice.gpu_index = gpu.index;
  return choice;
}

}  // namespace octet::engine
