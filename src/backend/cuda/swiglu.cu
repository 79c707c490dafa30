// SwiGLU gate of the MLP: out = gate · sigmoid(gate) · up, elementwise. Reads 8 and writes 4 bytes
// per element; a handful of FLOPs and one expf: bandwidth bound.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <algorithm>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void swiglu_kernel(const float* __restrict__ gate, const float* __restrict__ up, int64_t count,
                              float* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];  // the CPU path's expression; expf, not __expf
  }
}

}  // namespace

void launch_swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t s) {
  if (count == 0) return;
  const int64_t blocks = std::min<int64_t>((count + kThreads - 1) / kThreads, 65536);
  swiglu_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(gate, up, count, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
