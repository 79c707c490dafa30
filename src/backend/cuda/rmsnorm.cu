// RMSNorm and the residual add around it, one block per row. Bytes per row of `cols` floats:
// rmsnorm reads 4·cols (+ the weight, L2-resident) and writes 4·cols; add_rmsnorm reads residual and
// delta and writes residual and out: 16·cols, against 24·cols for add then rmsnorm as two kernels.
// About 4 FLOPs per element: bandwidth (or, at decode sizes, launch latency) bound.
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <algorithm>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 256;

// residual (and delta when not null) [rows, cols]; out may alias residual. The second pass re-reads
// the row, which is then in L1/L2.
__global__ void __launch_bounds__(kThreads)
rmsnorm_kernel(float* residual, const float* delta, const float* __restrict__ weight, float eps, int64_t cols,
               float* out) {
  __shared__ float shared[32];
  float* x = residual + blockIdx.x * cols;
  float* y = out + blockIdx.x * cols;
  float sum_squares = 0.0f;
  if (delta) {
    const float* d = delta + blockIdx.x * cols;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
      const float v = x[i] + d[i];
      x[i] = v;
      sum_squares = fmaf(v, v, sum_squares);
    }
  } else {
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) sum_squares = fmaf(x[i], x[i], sum_squares);
  }
  // Same expression as the CPU path: 1 / sqrt(mean + eps), IEEE division and square root.
  const float inv_rms = 1.0f / sqrtf(block_sum(sum_squares, shared) / static_cast<float>(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) y[i] = x[i] * inv_rms * weight[i];
}

// x and y may be the same buffer (x += x).
__global__ void add_kernel(float* x, const float* y, int64_t count) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

void check_rows(int64_t rows) {
  if (rows > 0x7FFFFFFF) fail("rmsnorm: {} rows exceed one launch", rows);
}

}  // namespace

void launch_rmsnorm(const float* x, const float* weight, float eps, int64_t rows, int64_t cols, float* out,
                    cudaStream_t s) {
  if (rows == 0 || cols == 0) return;
  check_rows(rows);
  // The kernel writes through `residual` only when delta is given.
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(const_cast<float*>(x), nullptr, weight, eps, cols,
                                                                   out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_add_rmsnorm(float* residual, const float* delta, const float* weight, float eps, int64_t rows,
                        int64_t cols, float* out, cudaStream_t s) {
  if (rows == 0 || cols == 0) return;
  check_rows(rows);
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(residual, delta, weight, eps, cols, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_add(float* x, const float* y, int64_t count, cudaStream_t s) {
  if (count == 0) return;
  const int64_t blocks = std::min<int64_t>((count + kThreads - 1) / kThreads, 65536);
  add_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(x, y, count);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
