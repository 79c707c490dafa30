// Row gathers. embed: reads count · hidden table elements (2 bytes for bf16) and writes
// count · hidden · 4 bytes; gather_rows: reads and writes count · cols · 4 bytes. No FLOPs; at decode
// sizes (a few rows of 8192) they are launch-latency bound, not bandwidth bound.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <cuda_bf16.h>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void embed_bf16_kernel(const __nv_bfloat16* __restrict__ table, const int32_t* __restrict__ tokens,
                                  int64_t hidden, float* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* src = table + static_cast<int64_t>(tokens[row]) * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) out[row * hidden + i] = __bfloat162float(src[i]);
}

__global__ void embed_f32_kernel(const float* __restrict__ table, const int32_t* __restrict__ tokens, int64_t hidden,
                                 float* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const float* src = table + static_cast<int64_t>(tokens[row]) * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) out[row * hidden + i] = src[i];
}

__global__ void gather_rows_kernel(const float* __restrict__ x, const int64_t* __restrict__ rows, int64_t cols,
                                   float* __restrict__ out) {
  const float* src = x + rows[blockIdx.x] * cols;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) out[blockIdx.x * cols + i] = src[i];
}

void check_grid(int64_t count, const char* what) {
  if (count > 0x7FFFFFFF) fail("{}: {} rows exceed one launch", what, count);
}

}  // namespace

void launch_embed_bf16(const uint16_t* table, const int32_t* tokens, int64_t count, int64_t hidden, float* out,
                       cudaStream_t s) {
  if (count == 0) return;
  check_grid(count, "embed");
  embed_bf16_kernel<<<static_cast<unsigned>(count), kThreads, 0, s>>>(
      reinterpret_cast<const __nv_bfloat16*>(table), tokens, hidden, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_embed_f32(const float* table, const int32_t* tokens, int64_t count, int64_t hidden, float* out,
                      cudaStream_t s) {
  if (count == 0) return;
  check_grid(count, "embed");
  embed_f32_kernel<<<static_cast<unsigned>(count), kThreads, 0, s>>>(table, tokens, hidden, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_gather_rows(const float* x, const int64_t* rows, int64_t count, int64_t cols, float* out, cudaStream_t s) {
  if (count == 0) return;
  check_grid(count, "gather_rows");
  gather_rows_kernel<<<static_cast<unsigned>(count), kThreads, 0, s>>>(x, rows, cols, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
