#pragma once
// Warp and block reductions for kernels with one block per row. blockDim.x must be a multiple of 32
// (at most 1024); every thread of the block must call the block forms, and all get the result.
#include <cuda_runtime.h>

namespace octet::backend::cuda {

__device__ __forceinline__ float warp_sum(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xFFFFFFFFu, value, offset);
  return value;
}

__device__ __forceinline__ float warp_max(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFFu, value, offset));
  return value;
}

// shared: at least 32 floats. The trailing barrier lets the caller reuse `shared` right away.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float value, float* shared) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  value = kMax ? warp_max(value) : warp_sum(value);
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  float total = lane < warps ? shared[lane] : 0.0f;  // 0: identity of sums and of magnitudes' max
  total = kMax ? warp_max(total) : warp_sum(total);
  __syncthreads();
  return total;
}

__device__ __forceinline__ float block_sum(float value, float* shared) { return block_reduce<false>(value, shared); }
// For magnitudes (values ≥ 0): the identity element is 0.
__device__ __forceinline__ float block_max_abs(float value, float* shared) { return block_reduce<true>(value, shared); }

}  // namespace octet::backend::cuda
