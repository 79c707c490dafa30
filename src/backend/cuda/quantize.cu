// Activation quantization before FP8 linears: one block per row, amax reduction then encode.
// Reads 4 bytes and writes 1 per element (plus a scale per row).
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/e4m3_encode.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void quantize_rows_e4m3_kernel(const float* x, int64_t cols, float static_scale, uint8_t* codes, float* row_scales) {
  await_earlier_kernels();
  const float* row = x + blockIdx.x * cols;
  float scale = static_scale;
  if (scale <= 0.0f) {
    float amax = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) amax = fmaxf(amax, fabsf(row[i]));
    __shared__ float reduce_scratch[32];
    amax = block_max(amax, reduce_scratch);
    scale = e4m3_row_scale(amax);
  }
  if (threadIdx.x == 0) row_scales[blockIdx.x] = scale;
  const float inverse = 1.0f / scale;
  // __NV_SATFINITE: overflow saturates to ±448 like the CPU encoder; rounding is to nearest even.
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    codes[blockIdx.x * cols + i] = __nv_cvt_float_to_fp8(row[i] * inverse, __NV_SATFINITE, __NV_E4M3);
}

__global__ void to_bf16_kernel(const float* x, int64_t count, __nv_bfloat16* out) {
  await_earlier_kernels();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < count) out[i] = __float2bfloat16_rn(x[i]);
}

__global__ void scale_rows_cols_kernel(float* out, int64_t rows, int64_t cols, const float* row_scales, const float* col_scales) {
  await_earlier_kernels();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < rows * cols) out[i] *= row_scales[i / cols] * col_scales[i % cols];
}

unsigned blocks_for(int64_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

}  // namespace

void launch_quantize_rows_e4m3(const float* x, int64_t rows, int64_t cols, float static_scale, uint8_t* codes,
                               float* row_scales, cudaStream_t s) {
  if (rows == 0) return;
  if (try_launch_quantize_rows_e4m3_in_registers(x, rows, cols, static_scale, codes, row_scales, s)) return;
  launch_kernel(quantize_rows_e4m3_kernel, LaunchShape{dim3(static_cast<unsigned>(rows)), dim3(kThreads)}, s, x, cols,
                static_scale, codes, row_scales);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_to_bf16(const float* x, int64_t count, uint16_t* out, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(to_bf16_kernel, LaunchShape{dim3(blocks_for(count)), dim3(kThreads)}, s,
                x, count, reinterpret_cast<__nv_bfloat16*>(out));
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_scale_rows_cols(float* out, int64_t rows, int64_t cols, const float* row_scales, const float* col_scales,
                            cudaStream_t s) {
  if (rows * cols == 0) return;
  launch_kernel(scale_rows_cols_kernel, LaunchShape{dim3(blocks_for(rows * cols)), dim3(kThreads)}, s, out, rows, cols,
                row_scales, col_scales);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
