#pragma once
// Sum and max of one float per thread over a thread block (blockDim.x a multiple of 32, at most
// 1024). Every thread gets the result; shared holds 32 floats and may be reused after the call.
#include <cuda_runtime.h>

namespace octet::backend::cuda {

__device__ __forceinline__ float block_sum(float value, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xFFFFFFFF, value, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  value = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : 0.0f;
  if (warp == 0)
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xFFFFFFFF, value, offset);
  if (threadIdx.x == 0) shared[0] = value;
  __syncthreads();
  value = shared[0];
  __syncthreads();
  return value;
}

__device__ __forceinline__ float block_max(float value, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFF, value, offset));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  value = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : 0.0f;
  if (warp == 0)
    for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFF, value, offset));
  if (threadIdx.x == 0) shared[0] = value;
  __syncthreads();
  value = shared[0];
  __syncthreads();
  return value;
}

}  // namespace octet::backend::cuda
