#pragma once
// Reductions across one thread block (blockDim.x a multiple of 32, at most 1024 threads); every
// thread of the block must call them, and gets the result.

namespace octet::backend::cuda {

// The largest of the threads' non-negative values (amax); fmaxf skips NaN (a NaN loses to any number).
__device__ __forceinline__ float block_max(float value) {
  __shared__ float warp_max[32];
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFF, value, offset));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = value;
  __syncthreads();
  if (threadIdx.x < 32) {
    value = threadIdx.x < blockDim.x / 32 ? warp_max[threadIdx.x] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xFFFFFFFF, value, offset));
    if (threadIdx.x == 0) warp_max[0] = value;
  }
  __syncthreads();
  const float result = warp_max[0];
  __syncthreads();  // a second call may overwrite warp_max only after every thread has read it
  return result;
}

}  // namespace octet::backend::cuda
