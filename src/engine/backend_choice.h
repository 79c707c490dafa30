#pragma once
// Which backend a run gets from --device, --precision and what the GPU probe found: a pure decision,
// so every case (no GPU, a GPU without FP8 tensor cores, auto and forced devices) is testable on
// any machine. choose_backend (model_loader.h) acts on it.
#include "backend/device.h"
#include "octet/engine.h"

#include <string>

namespace octet::engine {

struct BackendChoice {
  bool cuda = false;   // else the CPU backend
  int gpu_index = 0;   // with cuda
  std::string notice;  // with the CPU on a machine that has a GPU: why (logged as a warning); else empty
};

// Throws octet::Error for --device cuda with fp8 on a GPU below compute 8.9 (naming the GPU and the
// way out: --precision bf16 or --device cpu). --device cuda without a usable GPU is left to the CUDA
// backend's factory, whose error says why no GPU can be used.
BackendChoice decide_backend(Device device, Precision precision, const backend::CudaStatus& cuda);

}  // namespace octet::engine
