// K/V rows into the paged cache: reads tokens·kv_dim·4·2 bytes, writes tokens·kv_dim·(1, 2 or 4)·2
// bytes. FP8 storage takes one scale per (pool row, kv head): the checkpoint's static scale, or
// amax / max. The host has checked that every (slot, position) of the batch has a block.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/kv_layout.cuh"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

namespace octet::backend::cuda {
namespace {

__device__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFF, v, offset));
  return v;
}

// One warp stores one head's row at cell: lane_amax is the lane's part of the row's amax (used for a
// dynamic FP8 scale).
__device__ void store_head(KvStorage storage, const float* src, int64_t head_dim, int lane, float lane_amax,
                           float static_scale, int64_t cell, void* cache, float* scales) {
  const int64_t offset = cell * head_dim;
  switch (storage) {
    case KvStorage::f32:
      for (int64_t i = lane; i < head_dim; i += 32) static_cast<float*>(cache)[offset + i] = src[i];
      return;
    case KvStorage::bf16:
      for (int64_t i = lane; i < head_dim; i += 32) static_cast<__nv_bfloat16*>(cache)[offset + i] = __float2bfloat16_rn(src[i]);
      return;
    case KvStorage::e4m3:
    case KvStorage::e5m2: {
      const bool e4m3 = storage == KvStorage::e4m3;
      const float scale = static_scale > 0.0f ? static_scale : fp8_cache_scale(warp_max(lane_amax), e4m3);
      if (lane == 0) scales[cell] = scale;
      const float inverse = 1.0f / scale;
      auto* codes = static_cast<__nv_fp8_storage_t*>(cache);
      for (int64_t i = lane; i < head_dim; i += 32)
        codes[offset + i] = __nv_cvt_float_to_fp8(src[i] * inverse, __NV_SATFINITE, e4m3 ? __NV_E4M3 : __NV_E5M2);
      return;
    }
  }
}

// One warp per (token, kv head, K or V).
__global__ void kv_write_kernel(const float* k, const float* v, int64_t tokens, const int64_t* slots,
                                const int64_t* positions, KvLayout layout, float static_k_scale, float static_v_scale,
                                void* k_cache, void* v_cache, float* k_scales, float* v_scales) {
  await_earlier_kernels();
  const int64_t kv_heads = layout.kv_heads, head_dim = layout.head_dim;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (item >= tokens * kv_heads * 2) return;
  const int lane = threadIdx.x % 32;
  const bool is_v = item % 2 == 1;
  const int64_t token = item / 2 / kv_heads, head = item / 2 % kv_heads;
  const float* src = (is_v ? v : k) + (token * kv_heads + head) * head_dim;
  float amax = 0.0f;
  for (int64_t i = lane; i < head_dim; i += 32) amax = fmaxf(amax, fabsf(src[i]));
  store_head(layout.storage, src, head_dim, lane, amax, is_v ? static_v_scale : static_k_scale,
             cache_cell(layout, slots[token], positions[token], head), is_v ? v_cache : k_cache, is_v ? v_scales : k_scales);
}

// One warp per (token, head) of q, k and v: RoPE on q and k in place (rotate-half pairing, float32
// angle as in rope_kernel), then k and v into the cache exactly as kv_write_kernel stores them. With
// source.product set, the warp first writes its row from the product, scaled as scale_split_kernel
// scales it.
__global__ void rope_kv_write_kernel(float* q, float* k, const float* v, int64_t tokens, int64_t heads,
                                     const int64_t* slots, const int64_t* positions, const float* inverse_frequencies,
                                     KvLayout layout, float static_k_scale, float static_v_scale, void* k_cache,
                                     void* v_cache, float* k_scales, float* v_scales, QkvProduct source) {
  await_earlier_kernels();
  const int64_t kv_heads = layout.kv_heads, head_dim = layout.head_dim, half = head_dim / 2;
  const int64_t items_per_token = heads + 2 * kv_heads;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (item >= tokens * items_per_token) return;
  const int lane = threadIdx.x % 32;
  const int64_t token = item / items_per_token, which = item % items_per_token;
  const bool is_q = which < heads, is_k = !is_q && which < heads + kv_heads;
  const int64_t head = is_q ? which : is_k ? which - heads : which - heads - kv_heads;
  float* row = is_q ? q + (token * heads + head) * head_dim : is_k ? k + (token * kv_heads + head) * head_dim : nullptr;
  const int64_t v_offset = (token * kv_heads + head) * head_dim;
  const float* src = is_q || is_k ? row : source.product ? source.values_out + v_offset : v + v_offset;
  if (source.product) {
    const int64_t first = (is_q ? source.first_col[0] : is_k ? source.first_col[1] : source.first_col[2]) + head * head_dim;
    const float* from = source.product + token * source.cols + first;
    const float row_scale = source.row_scales[token];
    float* to = is_q || is_k ? row : source.values_out + v_offset;
    for (int64_t i = lane; i < head_dim; i += 32) to[i] = from[i] * (row_scale * source.col_scales[first + i]);
    __syncwarp();  // the rotation below pairs elements another lane wrote
  }
  float amax = 0.0f;
  if (is_q || is_k) {
    const float position = static_cast<float>(positions[token]);
    for (int64_t i = lane; i < half; i += 32) {
      float sine, cosine;
      sincosf(position * inverse_frequencies[i], &sine, &cosine);
      const float a = row[i], b = row[i + half];
      const float ra = a * cosine - b * sine, rb = b * cosine + a * sine;
      row[i] = ra;
      row[i + half] = rb;
      amax = fmaxf(amax, fmaxf(fabsf(ra), fabsf(rb)));
    }
    if (is_q) return;
    __syncwarp();  // store_head reads the rotated row with another split of the elements over the lanes
  } else {
    for (int64_t i = lane; i < head_dim; i += 32) amax = fmaxf(amax, fabsf(src[i]));
  }
  store_head(layout.storage, src, head_dim, lane, amax, is_k ? static_k_scale : static_v_scale,
             cache_cell(layout, slots[token], positions[token], head), is_k ? k_cache : v_cache, is_k ? k_scales : v_scales);
}

}  // namespace

void launch_rope_kv_write(float* q, float* k, const float* v, int64_t tokens, int64_t heads, const int64_t* slots,
                          const int64_t* positions, const float* inverse_frequencies, const KvLayout& layout,
                          float static_k_scale, float static_v_scale, void* k_cache, void* v_cache, float* k_scales,
                          float* v_scales, cudaStream_t s, const QkvProduct* from_product) {
  const int64_t warps = tokens * (heads + 2 * layout.kv_heads);
  if (warps == 0) return;
  constexpr int kWarpsPerBlock = 8;
  const LaunchShape shape{dim3(static_cast<unsigned>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock)),
                          dim3(kWarpsPerBlock * 32)};
  const QkvProduct source = from_product ? *from_product : QkvProduct{};
  if (source.product && (source.row_scales == nullptr || source.col_scales == nullptr || source.values_out == nullptr))
    fail("rope_kv_write: a q/k/v product without its row and column scales or the values' rows");
  launch_kernel(rope_kv_write_kernel, shape, s, q, k, v, tokens, heads, slots, positions, inverse_frequencies, layout,
                static_k_scale, static_v_scale, k_cache, v_cache, k_scales, v_scales, source);
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_kv_write(const float* k, const float* v, int64_t tokens, const int64_t* slots, const int64_t* positions,
                     const KvLayout& layout, float static_k_scale, float static_v_scale, void* k_cache, void* v_cache,
                     float* k_scales, float* v_scales, cudaStream_t s) {
  const int64_t warps = tokens * layout.kv_heads * 2;
  if (warps == 0) return;
  constexpr int kWarpsPerBlock = 8;
  const LaunchShape shape{dim3(static_cast<unsigned>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock)),
                          dim3(kWarpsPerBlock * 32)};
  launch_kernel(kv_write_kernel, shape, s, k, v, tokens, slots, positions, layout, static_k_scale, static_v_scale, k_cache,
                v_cache, k_scales, v_scales);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
