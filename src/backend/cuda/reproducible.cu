// The kernels of `numerics: reproducible` (reproducible_kernels.h). Every dot product and every sum
// is one warp adding exact double terms in the canonical lane order of backend/canonical_numerics.h:
// lane l takes terms l, l + 32, … in increasing order, warp_combine halves the 32 partials, lane 0
// holds the result. Float operations are spelled as IEEE intrinsics (__fmul_rn, __fdiv_rn, …) so
// that no contraction or fast-math flag changes a bit.
#include "backend/canonical_numerics.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kv_layout.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/reproducible_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace octet::backend::cuda::reproducible {
namespace {

constexpr int kWarps = 8;  // warps per block in every kernel here
constexpr unsigned kFullMask = 0xFFFFFFFFu;

// canonical::combine_lanes over the warp: lane 0 gets p[0] + p[16] …, the other lanes' values are unused.
__device__ __forceinline__ double warp_combine(double partial) {
  for (int offset = canonical::kLanes / 2; offset > 0; offset /= 2)
    partial = partial + __shfl_down_sync(kFullMask, partial, offset);
  return partial;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

__device__ __forceinline__ float decode_e4m3(uint8_t code) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), __NV_E4M3)));
}
__device__ __forceinline__ float decode_e5m2(uint8_t code) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), __NV_E5M2)));
}

// One warp per row.
__global__ void rmsnorm_kernel(float* residual, const float* delta, const float* weight, float eps, int64_t rows,
                               int64_t cols, float* out) {
  await_earlier_kernels();
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float* x = residual + row * cols;
  double partial = 0.0;
  for (int64_t i = lane; i < cols; i += 32) {
    float v = x[i];
    if (delta != nullptr) {
      v = __fadd_rn(v, delta[row * cols + i]);
      x[i] = v;
    }
    partial += static_cast<double>(v) * static_cast<double>(v);
  }
  const double sum_squares = __shfl_sync(kFullMask, warp_combine(partial), 0);
  const float mean_square = static_cast<float>(__ddiv_rn(sum_squares, static_cast<double>(cols)));
  const float inv_rms = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean_square, eps)));
  for (int64_t i = lane; i < cols; i += 32) out[row * cols + i] = __fmul_rn(__fmul_rn(x[i], inv_rms), weight[i]);
}

// One warp per row: scale from the row's amax (or the static one), codes = encode(x · (1 / scale)).
__global__ void quantize_rows_kernel(const float* x, int64_t rows, int64_t cols, float static_scale, uint8_t* codes,
                                     float* scales) {
  await_earlier_kernels();
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const float* src = x + row * cols;
  float scale = static_scale;
  if (!(scale > 0.0f)) {
    float amax = 0.0f;
    for (int64_t i = lane; i < cols; i += 32) amax = fmaxf(amax, fabsf(src[i]));
    scale = canonical::fp8_scale_from_amax(warp_max(amax), 448.0f);
  }
  const float inverse = __fdiv_rn(1.0f, scale);
  for (int64_t i = lane; i < cols; i += 32)
    codes[row * cols + i] = __nv_cvt_float_to_fp8(__fmul_rn(src[i], inverse), __NV_SATFINITE, __NV_E4M3);
  if (lane == 0) scales[row] = scale;
}

enum class Operand { fp8, fp8_blocks, bf16, f32 };

// Output o (blockIdx.x) of kWarps tokens (blockIdx.y), one warp each; the weight row stays in L1 for
// the block's warps.
template <Operand kind>
__global__ void linear_kernel(const float* x, const uint8_t* x_codes, const float* x_scales, LinearOperand w, int64_t rows,
                              int64_t in, int64_t out, float* y) {
  await_earlier_kernels();
  const int64_t o = blockIdx.x;
  const int64_t t = static_cast<int64_t>(blockIdx.y) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (t >= rows) return;
  float result = 0.0f;
  if constexpr (kind == Operand::fp8) {
    const uint8_t* xc = x_codes + t * in;
    const uint8_t* wc = w.e4m3_codes + o * in;
    double partial = 0.0;
    for (int64_t i = lane; i < in; i += 32)
      partial += static_cast<double>(decode_e4m3(xc[i])) * static_cast<double>(decode_e4m3(wc[i]));
    result = canonical::fp8_linear_output(warp_combine(partial), x_scales[t], w.channel_scales[o]);
  } else if constexpr (kind == Operand::fp8_blocks) {
    const uint8_t* xc = x_codes + t * in;
    const uint8_t* wc = w.e4m3_codes + o * in;
    const int64_t block = 128, k_blocks = (in + block - 1) / block;
    const float* scales = w.block_scales + o / block * k_blocks;
    double total = 0.0;
    for (int64_t b = 0; b < k_blocks; ++b) {
      const int64_t first = b * block, end = min(in, first + block);
      double partial = 0.0;
      for (int64_t i = first + lane; i < end; i += 32)
        partial += static_cast<double>(decode_e4m3(xc[i])) * static_cast<double>(decode_e4m3(wc[i]));
      const double block_sum = warp_combine(partial);
      total = fma(block_sum, static_cast<double>(scales[b]), total);  // meaningful in lane 0
    }
    result = static_cast<float>(__dmul_rn(total, static_cast<double>(x_scales[t])));
  } else {
    const float* xt = x + t * in;
    double partial = 0.0;
    for (int64_t i = lane; i < in; i += 32) {
      if constexpr (kind == Operand::bf16) {
        const float xb = __bfloat162float(__float2bfloat16_rn(xt[i]));
        const float wb = __bfloat162float(__ushort_as_bfloat16(w.bf16[o * in + i]));
        partial += static_cast<double>(xb) * static_cast<double>(wb);
      } else {
        partial += static_cast<double>(xt[i]) * static_cast<double>(w.f32[o * in + i]);
      }
    }
    result = static_cast<float>(warp_combine(partial));
  }
  if (lane == 0) y[t * out + o] = result;
}

// One thread per (token, head, pair).
__global__ void rope_kernel(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const int64_t* positions,
                            const float* inverse_frequencies) {
  await_earlier_kernels();
  const int64_t half = head_dim / 2;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= tokens * heads * half) return;
  const int64_t t = item / (heads * half), i = item % half;
  float* head = x + item / half * head_dim;
  float sin_value, cos_value;
  canonical::sincos(__fmul_rn(static_cast<float>(positions[t]), inverse_frequencies[i]), &sin_value, &cos_value);
  const float a = head[i], b = head[i + half];
  head[i] = canonical::rotate_first(a, b, cos_value, sin_value);
  head[i + half] = canonical::rotate_second(a, b, cos_value, sin_value);
}

// A cached element widened to double without rounding (FP8: decode(code) · scale fits in 53 bits).
__device__ __forceinline__ double cached(KvStorage storage, const void* cache, const float* scales, int64_t cell,
                                         int64_t head_dim, int64_t d) {
  const int64_t offset = cell * head_dim + d;
  switch (storage) {
    case KvStorage::f32: return static_cast<const float*>(cache)[offset];
    case KvStorage::bf16: return __bfloat162float(static_cast<const __nv_bfloat16*>(cache)[offset]);
    case KvStorage::e4m3:
      return static_cast<double>(decode_e4m3(static_cast<const uint8_t*>(cache)[offset])) * static_cast<double>(scales[cell]);
    case KvStorage::e5m2:
      return static_cast<double>(decode_e5m2(static_cast<const uint8_t*>(cache)[offset])) * static_cast<double>(scales[cell]);
  }
  return 0.0;
}

constexpr int kChunk = 1024;  // positions whose weights are held in shared memory at once (a multiple of 32)
constexpr int kDimsPerWarp = static_cast<int>(kMaxHeadDim / kWarps);

// One block per (token, head). Pass 1: every score, for the max. Pass 2, a chunk of positions at a
// time: the scores again, their exp (into shared memory), and lane l of each warp adding the weights
// and weight · v of positions ≡ l (mod 32) into its partials, so each sum is in the canonical order.
__global__ void attention_kernel(const float* q, int64_t heads, const int64_t* slots, const int64_t* positions,
                                 KvLayout layout, const void* k_cache, const void* v_cache, const float* k_scales,
                                 const float* v_scales, float* out) {
  await_earlier_kernels();
  __shared__ float query[kMaxHeadDim];
  __shared__ float weights[kChunk];
  __shared__ float warp_maxima[kWarps];
  __shared__ double total_shared;
  const int64_t t = blockIdx.x / heads, h = blockIdx.x % heads;
  const int64_t head_dim = layout.head_dim, group = heads / layout.kv_heads, kv_head = h / group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t count = positions[t] + 1, slot = slots[t];
  const int64_t q_offset = (t * heads + h) * head_dim;
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) query[d] = q[q_offset + d];
  __syncthreads();
  const double inv_sqrt_dim = __ddiv_rn(1.0, __dsqrt_rn(static_cast<double>(head_dim)));
  auto score = [&](int64_t p) {  // the same value in every lane
    const int64_t cell = cache_cell(layout, slot, p, kv_head);
    double partial = 0.0;
    for (int64_t d = lane; d < head_dim; d += 32)
      partial += static_cast<double>(query[d]) * cached(layout.storage, k_cache, k_scales, cell, head_dim, d);
    const double dot = __shfl_sync(kFullMask, warp_combine(partial), 0);
    return static_cast<float>(__dmul_rn(dot, inv_sqrt_dim));
  };

  float max_score = -INFINITY;
  for (int64_t p = warp; p < count; p += kWarps) max_score = fmaxf(max_score, score(p));
  if (lane == 0) warp_maxima[warp] = max_score;
  __syncthreads();
  max_score = warp_maxima[0];
  for (int w = 1; w < kWarps; ++w) max_score = fmaxf(max_score, warp_maxima[w]);

  double total_partial = 0.0;  // warp 0 only
  double value_partials[kDimsPerWarp];
#pragma unroll
  for (int m = 0; m < kDimsPerWarp; ++m) value_partials[m] = 0.0;
  for (int64_t first = 0; first < count; first += kChunk) {
    const int64_t chunk = min(static_cast<int64_t>(kChunk), count - first);
    for (int64_t j = warp; j < chunk; j += kWarps) {
      const float s = score(first + j);
      if (lane == 0) weights[j] = canonical::exp(__fsub_rn(s, max_score));
    }
    __syncthreads();
    for (int64_t j = lane; j < chunk; j += 32) {
      const double weight = weights[j];
      if (warp == 0) total_partial += weight;
      const int64_t cell = cache_cell(layout, slot, first + j, kv_head);
#pragma unroll
      for (int m = 0; m < kDimsPerWarp; ++m) {
        const int64_t d = warp + static_cast<int64_t>(m) * kWarps;
        if (d < head_dim) value_partials[m] += weight * cached(layout.storage, v_cache, v_scales, cell, head_dim, d);
      }
    }
    __syncthreads();  // the next chunk overwrites weights
  }
  if (warp == 0) {
    const double total = warp_combine(total_partial);
    if (lane == 0) total_shared = total;
  }
  __syncthreads();
  const double total = total_shared;
#pragma unroll
  for (int m = 0; m < kDimsPerWarp; ++m) {
    const int64_t d = warp + static_cast<int64_t>(m) * kWarps;
    const double sum = warp_combine(value_partials[m]);
    if (lane == 0 && d < head_dim) out[q_offset + d] = static_cast<float>(__ddiv_rn(sum, total));
  }
}

__global__ void swiglu_kernel(const float* gate, const float* up, int64_t count, float* out) {
  await_earlier_kernels();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const float g = gate[i];
  out[i] = canonical::swiglu(g, up[i], canonical::exp(-g));
}

unsigned blocks_of(int64_t items, int64_t per_block) { return static_cast<unsigned>((items + per_block - 1) / per_block); }

}  // namespace

void launch_rmsnorm(float* residual, const float* delta, const float* weight, float eps, int64_t rows, int64_t cols,
                    float* out, cudaStream_t s) {
  if (rows == 0) return;
  launch_kernel(rmsnorm_kernel, LaunchShape{dim3(blocks_of(rows, kWarps)), dim3(kWarps * 32)}, s, residual, delta, weight,
                eps, rows, cols, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_quantize_rows(const float* x, int64_t rows, int64_t cols, float static_scale, uint8_t* codes, float* scales,
                          cudaStream_t s) {
  if (rows == 0) return;
  launch_kernel(quantize_rows_kernel, LaunchShape{dim3(blocks_of(rows, kWarps)), dim3(kWarps * 32)}, s, x, rows, cols,
                static_scale, codes, scales);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_linear(const float* x, const uint8_t* x_codes, const float* x_scales, const LinearOperand& w, int64_t rows,
                   int64_t in, int64_t out, float* y, cudaStream_t s) {
  if (rows == 0 || out == 0) return;
  if (blocks_of(rows, kWarps) > 65535u) fail("reproducible linear: {} rows exceed the kernel's grid", rows);
  const LaunchShape shape{dim3(static_cast<unsigned>(out), blocks_of(rows, kWarps)), dim3(kWarps * 32)};
  if (w.e4m3_codes != nullptr && w.block_scales != nullptr)
    launch_kernel(linear_kernel<Operand::fp8_blocks>, shape, s, x, x_codes, x_scales, w, rows, in, out, y);
  else if (w.e4m3_codes != nullptr)
    launch_kernel(linear_kernel<Operand::fp8>, shape, s, x, x_codes, x_scales, w, rows, in, out, y);
  else if (w.bf16 != nullptr)
    launch_kernel(linear_kernel<Operand::bf16>, shape, s, x, x_codes, x_scales, w, rows, in, out, y);
  else
    launch_kernel(linear_kernel<Operand::f32>, shape, s, x, x_codes, x_scales, w, rows, in, out, y);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_rope(float* x, int64_t tokens, int64_t heads, int64_t head_dim, const int64_t* positions,
                 const float* inverse_frequencies, cudaStream_t s) {
  const int64_t items = tokens * heads * (head_dim / 2);
  if (items == 0) return;
  launch_kernel(rope_kernel, LaunchShape{dim3(blocks_of(items, 256)), dim3(256)}, s, x, tokens, heads, head_dim, positions,
                inverse_frequencies);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_attention(const float* q, int64_t tokens, int64_t heads, const int64_t* slots, const int64_t* positions,
                      const KvLayout& layout, const void* k_cache, const void* v_cache, const float* k_scales,
                      const float* v_scales, float* out, cudaStream_t s) {
  if (tokens == 0) return;
  if (layout.head_dim > kMaxHeadDim) fail("reproducible attention: head_dim {} above the kernel's {}", layout.head_dim, kMaxHeadDim);
  if (heads % layout.kv_heads != 0) fail("attention: {} query heads not a multiple of {} kv heads", heads, layout.kv_heads);
  launch_kernel(attention_kernel, LaunchShape{dim3(static_cast<unsigned>(tokens * heads)), dim3(kWarps * 32)}, s, q, heads,
                slots, positions, layout, k_cache, v_cache, k_scales, v_scales, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_swiglu(const float* gate, const float* up, int64_t count, float* out, cudaStream_t s) {
  if (count == 0) return;
  launch_kernel(swiglu_kernel, LaunchShape{dim3(blocks_of(count, 256)), dim3(256)}, s, gate, up, count, out);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda::reproducible
