// Memory-bound kernels: each reads its inputs once and writes its output once, so their roofline
// is bytes / bandwidth (e.g. rmsnorm of [tokens, 8192] float32: 2 · 32 KiB per token).
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

// Per-row E4M3 codes of the row this thread block just wrote (each thread re-reads only the elements
// it wrote, so no barrier is needed before), as quantize_rows_e4m3_kernel computes them.
__device__ void quantize_own_row(const float* row, int64_t cols, float local_amax, float* shared, uint8_t* codes,
                                 float* row_scale) {
  const float amax = block_max(local_amax, shared);
  const float scale = e4m3_row_scale(amax);
  if (threadIdx.x == 0) *row_scale = scale;
  const float inverse = 1.0f / scale;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    codes[i] = __nv_cvt_float_to_fp8(row[i] * inverse, __NV_SATFINITE, __NV_E4M3);
}

__global__ void embed_bf16_kernel(const __nv_bfloat16* table, const int32_t* tokens, int64_t hidden, float* out) {
  await_earlier_kernels();
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* src = table + static_cast<int64_t>(tokens[row]) * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) out[row * hidden + i] = __bfloat162float(src[i]);
}

__global__ void embed_f32_kernel(const float* table, const int32_t* tokens, int64_t hidden, float* out) {
  await_earlier_kernels();
  const int64_t row = blockIdx.x;
  const float* src = table + static_cast<int64_t>(tokens[row]) * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) out[row * hidden + i] = src[i];
}

// The fp8 table's row times its scale: decode(code) · scale, the same product the CPU backend forms.
__global__ void embed_e4m3_kernel(const uint8_t* codes, const float* row_scales, const int32_t* tokens, int64_t hidden,
                                  float* out) {
  await_earlier_kernels();
  const int64_t row = blockIdx.x;
  const int64_t token = tokens[row];
  const uint8_t* src = codes + token * hidden;
  const float scale = row_scales[token];
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const __half value(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(src[i]), __NV_E4M3));
    out[row * hidden + i] = __half2float(value) * scale;
  }
}

__global__ void rmsnorm_kernel(float* residual, const float* delta, const float* weight, float eps, int64_t cols,
                               float* out, uint8_t* codes, float* row_scales) {
  await_earlier_kernels();
  __shared__ float shared[32];
  float* x = residual + blockIdx.x * cols;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = x[i];
    if (delta) {
      v += delta[blockIdx.x * cols + i];
      x[i] = v;
    }
    sum += v * v;
  }
  const float inv_rms = rsqrtf(block_sum(sum, shared) / static_cast<float>(cols) + eps);
  float* y = out + blockIdx.x * cols;
  float amax = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    const float value = x[i] * inv_rms * weight[i];
    y[i] = value;
    amax = fmaxf(amax, fabsf(value));
  }
  if (codes) quantize_own_row(y, cols, amax, shared, codes + blockIdx.x * cols, row_scales + blockIdx.x);
}

__global__ void add_kernel(float* x, const float* y, int64_t count) {
  await_earlier_kernels();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < count) x[i] += y[i];
}

__global__ void swiglu_kernel(const float* gate, const float* up, int64_t count, float* out) {
  await_earlier_kernels();
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < count) {
    const float g = gate[i];
    out[i] = g / (1.0f + __expf(-g)) * up[i];
  }
}

__global__ void swiglu_quantize_kernel(const float* gate, const float* up, int64_t cols, float* out, uint8_t* codes,
                                       float* row_scales) {
  await_earlier_kernels();
  __shared__ float shared[32];
  const int64_t offset = blockIdx.x * cols;
  float amax = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    const float g = gate[offset + i];
    const float value = g / (1.0f + __expf(-g)) * up[offset + i];
    out[offset + i] = value;
    amax = fmaxf(amax, fabsf(value));
  }
  quantize_own_row(out + offset, cols, amax, shared, codes + offset, row_scales + blockIdx.x);
}

// One block per token; rotate-half pairing (i, i + head_dim/2) as in Hugging Face's Llama.
__global__ void rope_kernel(float* x, int64_t heads, int64_t head_dim, const int64_t* positions,
                            const float* inverse_frequencies) {
  await_earlier_kernels();
  const int64_t token = blockIdx.x, half = head_dim / 2;
  const float position = static_cast<float>(positions[token]);
  for (int64_t item = threadIdx.x; item < heads * half; item += blockDim.x) {
    const int64_t h = item / half, i = item % half;
    float* head = x + (token * heads + h) * head_dim;
    float sine, cosine;
    sincosf(position * inverse_frequencies[i], &sine, &cosine);
    const float a = head[i], b = head[i + half];
    head[i] = a * cosine - b * sine;
    head[i + half] = b * cosine + a * sine;
  }
}

__global__ void gather_rows_kernel(const float* x, const int64_t* rows, int64_t cols, float* out) {
  await_earlier_kernels();
  const float* src = x + rows[blockIdx.x] * cols;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) out[blockIdx.x * cols + i] = src[i];
}

unsigned blocks_for(int64_t count) { return static_cast<unsigned>((count + kThreads - 1) / kThreads); }

}  // namespace

void launch_embed_bf16(const uint16_t* table, const int32_t* tokens, int64_t count, int64_t hidden, float* out, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(embed_bf16_kernel, LaunchShape{dim3(static_cast<unsigned>(count)), dim3(kThreads)}, s,
                reinterpret_cast<const __nv_bfloat16*>(table), tokens, hidden, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_embed_f32(const float* table, const int32_t* tokens, int64_t count, int64_t hidden, float* out, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(embed_f32_kernel, LaunchShape{dim3(static_cast<unsigned>(count)), dim3(kThreads)}, s,
                table, tokens, hidden, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_embed_e4m3(const uint8_t* codes, const float* row_scales, const int32_t* tokens, int64_t count, int64_t hidden,
                       float* out, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(embed_e4m3_kernel, LaunchShape{dim3(static_cast<unsigned>(count)), dim3(kThreads)}, s,
                codes, row_scales, tokens, hidden, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_add_rmsnorm_quantize(float* residual, const float* delta, const float* weight, float eps, int64_t rows,
                                 int64_t cols, float* out, uint8_t* codes, float* row_scales, cudaStream_t s) {
  if (rows == 0) return;
  if (try_launch_add_rmsnorm_quantize_in_registers(residual, delta, weight, eps, rows, cols, out, codes, row_scales, s)) return;
  // A decode batch has fewer rows than SMs: wider blocks shorten each row's three passes.
  const int threads = rows < 128 ? 1024 : kThreads;
  launch_kernel(rmsnorm_kernel, LaunchShape{dim3(static_cast<unsigned>(rows)), dim3(threads)}, s,
                residual, delta, weight, eps, cols, out, codes, row_scales);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_swiglu_quantize(const float* gate, const float* up, int64_t rows, int64_t cols, float* out, uint8_t* codes,
                            float* row_scales, cudaStream_t s) {
  if (rows == 0) return;
  if (try_launch_swiglu_quantize_in_registers(gate, up, rows, cols, out, codes, row_scales, s)) return;
  launch_kernel(swiglu_quantize_kernel, LaunchShape{dim3(static_cast<unsigned>(rows)), dim3(1024)}, s,
                gate, up, cols, out, codes, row_scales);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_add(float* x, const float* y, int64_t count, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(add_kernel, LaunchShape{dim3(blocks_for(count)), dim3(kThreads)}, s, x, y, count);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(swiglu_kernel, LaunchShape{dim3(blocks_for(count)), dim3(kThreads)}, s, gate, up, count, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const int64_t* positions,
                 const float* inverse_frequencies, cudaStream_t s) {
  if (tokens == 0) return;
  launch_kernel(rope_kernel, LaunchShape{dim3(static_cast<unsigned>(tokens)), dim3(kThreads)}, s,
                x, heads, head_dim, positions, inverse_frequencies);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_gather_rows(const float* x, const int64_t* rows, int64_t count, int64_t cols, float* out, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(gather_rows_kernel, LaunchShape{dim3(static_cast<unsigned>(count)), dim3(kThreads)}, s,
                x, rows, cols, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
