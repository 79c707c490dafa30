// The plain matrix product: one thread per output element, a float32 loop over k. Correct for every
// shape, stride and alignment, and slow (each thread re-reads a whole weight row: rows · n · k operand
// reads, mostly from L2). It backs up cuBLASLt when no algorithm fits a shape, and it is the
// independent device-side check of the fast paths in the tests.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

namespace octet::backend::cuda {
namespace {

template <OperandType T>
__device__ __forceinline__ float operand(const void* base, int64_t index) {
  if constexpr (T == OperandType::f32) return static_cast<const float*>(base)[index];
  if constexpr (T == OperandType::bf16) return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]);
  if constexpr (T == OperandType::e4m3) {
    const __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<const __nv_fp8_storage_t*>(base)[index], __NV_E4M3);
    return __half2float(__half(h));
  }
  return 0.0f;
}

template <OperandType T>
__global__ void matmul_simple_kernel(const void* x, int64_t x_stride, const float* x_scales, int64_t rows, const void* w,
                                     int64_t w_stride, const float* w_scales, int64_t n, int64_t k, float* y,
                                     int64_t y_stride) {
  const int64_t total = rows * n;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t m = index / n, col = index % n;
    float sum = 0.0f;
    for (int64_t i = 0; i < k; ++i) sum = fmaf(operand<T>(x, m * x_stride + i), operand<T>(w, col * w_stride + i), sum);
    const float scale = (x_scales ? x_scales[m] : 1.0f) * (w_scales ? w_scales[col] : 1.0f);
    y[m * y_stride + col] = sum * scale;
  }
}

}  // namespace

void launch_matmul_simple(OperandType type, const void* x, int64_t x_stride, const float* x_scales, int64_t rows,
                          const void* w, int64_t w_stride, const float* w_scales, int64_t n, int64_t k, float* y,
                          int64_t y_stride, cudaStream_t s) {
  if (rows * n == 0) return;
  constexpr int kThreads = 256;
  const unsigned blocks = static_cast<unsigned>(std::clamp<int64_t>((rows * n + kThreads - 1) / kThreads, 1, 65536));
  switch (type) {
    case OperandType::e4m3:
      matmul_simple_kernel<OperandType::e4m3><<<blocks, kThreads, 0, s>>>(x, x_stride, x_scales, rows, w, w_stride,
                                                                          w_scales, n, k, y, y_stride);
      break;
    case OperandType::bf16:
      matmul_simple_kernel<OperandType::bf16><<<blocks, kThreads, 0, s>>>(x, x_stride, x_scales, rows, w, w_stride,
                                                                          w_scales, n, k, y, y_stride);
      break;
    case OperandType::f32:
      matmul_simple_kernel<OperandType::f32><<<blocks, kThreads, 0, s>>>(x, x_stride, x_scales, rows, w, w_stride,
                                                                         w_scales, n, k, y, y_stride);
      break;
  }
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
