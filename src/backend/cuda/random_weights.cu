// Pseudo-random weights made on the device for --dummy-weights: a counter-based hash (no state), so
// any element can be generated independently and a seed always gives the same tensor. Write-only:
// bytes = the tensor's size, once.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

namespace octet::backend::cuda {
namespace {

__device__ __forceinline__ uint64_t mix(uint64_t z) {  // splitmix64 finaliser
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Approximately N(0, 1): the sum of four uniforms, centred and scaled (Irwin–Hall).
__device__ __forceinline__ float normal(uint64_t seed, int64_t index) {
  const uint64_t bits = mix(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(index));
  float sum = 0.0f;
  for (int i = 0; i < 4; ++i) sum += static_cast<float>((bits >> (16 * i)) & 0xFFFF) / 65535.0f;
  return (sum - 2.0f) * 1.7320508f;
}

__global__ void random_e4m3_kernel(uint8_t* codes, int64_t rows, int64_t cols, int64_t stride, uint64_t seed) {
  const int64_t total = rows * stride;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / stride, c = i % stride;
    // σ = 112 puts 4σ at the E4M3 maximum, like a per-channel amax scale would.
    codes[i] = c < cols ? __nv_cvt_float_to_fp8(normal(seed, r * cols + c) * 112.0f, __NV_SATFINITE, __NV_E4M3) : 0;
  }
}

__global__ void random_bf16_kernel(__nv_bfloat16* out, int64_t rows, int64_t cols, int64_t stride, float stddev,
                                   uint64_t seed) {
  const int64_t total = rows * stride;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / stride, c = i % stride;
    out[i] = __float2bfloat16_rn(c < cols ? stddev * normal(seed, r * cols + c) : 0.0f);
  }
}

__global__ void random_f32_kernel(float* out, int64_t count, float mean, float stddev, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = mean + stddev * normal(seed, i);
}

constexpr unsigned kBlocks = 4096, kThreads = 256;

}  // namespace

void launch_random_e4m3(uint8_t* codes, int64_t rows, int64_t cols, int64_t stride, uint64_t seed, cudaStream_t s) {
  if (rows * stride == 0) return;
  if (stride < cols) fail("random_e4m3: stride {} below {} columns", stride, cols);
  random_e4m3_kernel<<<kBlocks, kThreads, 0, s>>>(codes, rows, cols, stride, seed);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_random_bf16(uint16_t* out, int64_t rows, int64_t cols, int64_t stride, float stddev, uint64_t seed,
                        cudaStream_t s) {
  if (rows * stride == 0) return;
  if (stride < cols) fail("random_bf16: stride {} below {} columns", stride, cols);
  random_bf16_kernel<<<kBlocks, kThreads, 0, s>>>(reinterpret_cast<__nv_bfloat16*>(out), rows, cols, stride, stddev,
                                                  seed);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_random_f32(float* out, int64_t count, float mean, float stddev, uint64_t seed, cudaStream_t s) {
  if (count == 0) return;
  random_f32_kernel<<<kBlocks, kThreads, 0, s>>>(out, count, mean, stddev, seed);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
