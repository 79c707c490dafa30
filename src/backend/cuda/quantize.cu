// Activation conversions in front of the linear layers, and the FP8 GEMM epilogue.
// quantize_rows_e4m3: one block per row; reads 4·cols bytes (twice: amax, then encode, the second
// read mostly from L1/L2) and writes k_padded code bytes and a scale. rows_to_bf16: reads 4, writes 2
// bytes per element. scale_rows_cols: reads and writes 4 bytes per output element. All bandwidth
// bound; at decode sizes, latency bound.
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cfloat>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint8_t to_e4m3(float value) {
  // Round to nearest even; finite overflow and ±inf saturate to ±448, NaN stays NaN: the CPU encoder's
  // behaviour (fp8/fp8.h).
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(value, __NV_SATFINITE, __NV_E4M3));
}

// Each thread encodes groups of 4 consecutive columns and stores them as one 32-bit word.
template <bool kVectorLoads>
__global__ void __launch_bounds__(kThreads)
quantize_rows_e4m3_kernel(const float* __restrict__ x, int64_t cols, int64_t out_stride, float static_scale,
                          uint8_t* __restrict__ codes, float* __restrict__ row_scales) {
  __shared__ float shared[32];
  const float* row = x + blockIdx.x * cols;
  float scale = static_scale;
  if (scale <= 0.0f) {
    float amax = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) amax = fmaxf(amax, fabsf(row[i]));
    amax = block_max_abs(amax, shared);
    // fp8::scale_from_amax: amax / 448 (IEEE division), at least FLT_MIN, 1 for an all-zero row. A
    // non-finite amax gives a non-finite scale, so the row's output turns NaN rather than silently wrong.
    scale = amax == 0.0f ? 1.0f : fmaxf(amax / 448.0f, FLT_MIN);
  }
  if (threadIdx.x == 0) row_scales[blockIdx.x] = scale;
  const float inverse = 1.0f / scale;  // the CPU encodes x · (1 / scale): the same two roundings
  uint32_t* out = reinterpret_cast<uint32_t*>(codes + blockIdx.x * out_stride);
  for (int64_t group = threadIdx.x; group < out_stride / 4; group += blockDim.x) {
    const int64_t c = group * 4;
    float v[4];
    if (kVectorLoads) {  // cols % 4 == 0: a group is all inside or all past the row
      if (c < cols) {
        const float4 f = *reinterpret_cast<const float4*>(row + c);
        v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
      } else {
        v[0] = v[1] = v[2] = v[3] = 0.0f;
      }
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e) v[e] = c + e < cols ? row[c + e] : 0.0f;
    }
    uint32_t word = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e) word |= static_cast<uint32_t>(to_e4m3(v[e] * inverse)) << (8 * e);
    out[group] = word;
  }
}

__global__ void rows_to_bf16_kernel(const float* __restrict__ x, int64_t rows, int64_t cols, int64_t out_stride,
                                    __nv_bfloat16* __restrict__ out) {
  const int64_t total = rows * out_stride;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / out_stride, c = i % out_stride;
    out[i] = __float2bfloat16_rn(c < cols ? x[r * cols + c] : 0.0f);
  }
}

__global__ void scale_rows_cols_kernel(const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                                       int64_t rows, int64_t cols, const float* __restrict__ row_scales,
                                       const float* __restrict__ col_scales) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    dst[r * dst_stride + c] = src[r * src_stride + c] * (row_scales ? row_scales[r] : 1.0f) * (col_scales ? col_scales[c] : 1.0f);
  }
}

unsigned grid_for(int64_t count) {
  return static_cast<unsigned>(std::clamp<int64_t>((count + kThreads - 1) / kThreads, 1, 65536));
}

}  // namespace

void launch_quantize_rows_e4m3(const float* x, int64_t rows, int64_t cols, int64_t out_stride, float static_scale,
                               uint8_t* codes, float* row_scales, cudaStream_t s) {
  if (rows == 0) return;
  if (out_stride < cols || out_stride % 4 != 0)
    fail("quantize_rows_e4m3: output stride {} for {} columns (must be ≥ cols and a multiple of 4)", out_stride, cols);
  if (rows > 0x7FFFFFFF) fail("quantize_rows_e4m3: {} rows exceed one launch", rows);
  const bool vector_loads = cols % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  if (vector_loads)
    quantize_rows_e4m3_kernel<true><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, cols, out_stride, static_scale,
                                                                                    codes, row_scales);
  else
    quantize_rows_e4m3_kernel<false><<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, cols, out_stride,
                                                                                     static_scale, codes, row_scales);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_rows_to_bf16(const float* x, int64_t rows, int64_t cols, int64_t out_stride, uint16_t* out,
                         cudaStream_t s) {
  if (rows == 0) return;
  if (out_stride < cols) fail("rows_to_bf16: output stride {} below {} columns", out_stride, cols);
  rows_to_bf16_kernel<<<grid_for(rows * out_stride), kThreads, 0, s>>>(x, rows, cols, out_stride,
                                                                       reinterpret_cast<__nv_bfloat16*>(out));
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_scale_rows_cols(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
                            int64_t cols, const float* row_scales, const float* col_scales, cudaStream_t s) {
  if (rows * cols == 0) return;
  scale_rows_cols_kernel<<<grid_for(rows * cols), kThreads, 0, s>>>(src, src_stride, dst, dst_stride, rows, cols,
                                                                    row_scales, col_scales);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
