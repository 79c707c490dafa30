// FP8 E4M3 linear layers with one weight scale per 128×128 block (compressed-tensors "block"):
// y[m, n] = row_scales[m] · Σ_b block_scales[n / 128][b] · Σ_{k in block b} x[m, k] · w[n, k].
// Bytes: n·k weight bytes + rows·k activation bytes + rows·n·4 output bytes; FLOPs: 2·rows·n·k.
//
// One warp per output feature and up to kRowsPerWarp activation rows, on CUDA cores: each lane loads
// 16 bytes of the weight row at a time (a chunk never straddles a 128-wide block), sums the chunk's
// exact E4M3 products in float32, multiplies the sum by its block's scale and accumulates; the warp's
// lanes are summed at the end. A weight row is read once per kRowsPerWarp activation rows, so this
// is near the memory roofline only for decode-sized batches; larger batches are correct but slow
// (no tensor cores).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

#include <cuda_fp8.h>

#include <algorithm>
#include <cstdint>

namespace octet::backend::cuda {
namespace {

constexpr int kScaleBlock = 128;
constexpr int kWarpsPerBlock = 8;
constexpr int kRowsPerWarp = 4;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ float e4m3_value(uint8_t code) {
  __nv_fp8_e4m3 value;
  value.__x = code;
  return static_cast<float>(value);
}

// kChunk: bytes of k a lane takes at once, 16 (k a multiple of 16, 16-byte aligned rows) or 1.
template <int kChunk>
__device__ __forceinline__ void load_chunk(const uint8_t* source, uint8_t (&out)[kChunk]) {
  if constexpr (kChunk == 16) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(source));
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 16; ++i) out[i] = static_cast<uint8_t>(words[i / 4] >> (8 * (i % 4)));
  } else {
#pragma unroll
    for (int i = 0; i < kChunk; ++i) out[i] = __ldg(source + i);
  }
}

template <int kChunk>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    linear_e4m3_block128_kernel(const uint8_t* __restrict__ x, const float* __restrict__ row_scales, int64_t rows,
                                const uint8_t* __restrict__ w, const float* __restrict__ block_scales, int64_t n,
                                int64_t k, float* __restrict__ y) {
  await_earlier_kernels();
  static_assert(kScaleBlock % kChunk == 0, "a chunk must lie inside one scale block");
  const int lane = threadIdx.x % 32;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int64_t first_row = static_cast<int64_t>(blockIdx.y) * kRowsPerWarp;
  if (col >= n) return;  // the whole warp leaves together
  const int tile_rows = static_cast<int>(rows - first_row < kRowsPerWarp ? rows - first_row : kRowsPerWarp);
  const int64_t k_blocks = (k + kScaleBlock - 1) / kScaleBlock;
  const float* col_block_scales = block_scales + (col / kScaleBlock) * k_blocks;
  const uint8_t* w_row = w + col * k;

  float acc[kRowsPerWarp] = {};
  for (int64_t start = static_cast<int64_t>(lane) * kChunk; start < k; start += 32 * kChunk) {
    const float scale = col_block_scales[start / kScaleBlock];
    uint8_t w_codes[kChunk];
    load_chunk<kChunk>(w_row + start, w_codes);
    float w_values[kChunk];
#pragma unroll
    for (int i = 0; i < kChunk; ++i) w_values[i] = e4m3_value(w_codes[i]);
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      if (r >= tile_rows) break;
      uint8_t x_codes[kChunk];
      load_chunk<kChunk>(x + (first_row + r) * k + start, x_codes);
      float chunk_sum = 0.0f;
#pragma unroll
      for (int i = 0; i < kChunk; ++i) chunk_sum = fmaf(e4m3_value(x_codes[i]), w_values[i], chunk_sum);
      acc[r] = fmaf(chunk_sum, scale, acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    float sum = acc[r];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0 && r < tile_rows) y[(first_row + r) * n + col] = sum * row_scales[first_row + r];
  }
}

}  // namespace

void launch_linear_e4m3_block128(const uint8_t* x, const float* row_scales, int64_t rows, const uint8_t* w,
                                 const float* block_scales, int64_t n, int64_t k, float* y, cudaStream_t s) {
  if (rows <= 0 || n <= 0) return;
  const bool wide = k % 16 == 0 && (reinterpret_cast<uintptr_t>(x) % 16) == 0 && (reinterpret_cast<uintptr_t>(w) % 16) == 0;
  const unsigned col_blocks = static_cast<unsigned>((n + kWarpsPerBlock - 1) / kWarpsPerBlock);
  // Rows beyond one grid's y range go in further launches.
  for (int64_t first = 0; first < rows; first += kMaxGridY * kRowsPerWarp) {
    const int64_t count = std::min(rows - first, kMaxGridY * kRowsPerWarp);
    const dim3 grid(col_blocks, static_cast<unsigned>((count + kRowsPerWarp - 1) / kRowsPerWarp));
    if (wide)
      launch_kernel(linear_e4m3_block128_kernel<16>, LaunchShape{grid, dim3(kWarpsPerBlock * 32)}, s, x + first * k,
                    row_scales + first, count, w, block_scales, n, k, y + first * n);
    else
      launch_kernel(linear_e4m3_block128_kernel<1>, LaunchShape{grid, dim3(kWarpsPerBlock * 32)}, s, x + first * k,
                    row_scales + first, count, w, block_scales, n, k, y + first * n);
    OCTET_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace octet::backend::cuda
