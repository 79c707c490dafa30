// K/V rows into the paged cache: reads tokens·kv_dim·4·2 bytes, writes tokens·kv_dim·(1, 2 or 4)·2
// bytes. FP8 storage takes one scale per (pool row, kv head): the checkpoint's static scale, or
// amax / max. The host has checked that every (slot, position) of the batch has a block.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

namespace octet::backend::cuda {
namespace {

__device__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFF, v, offset));
  return v;
}

// One warp per (token, kv head, K or V).
__global__ void kv_write_kernel(const float* k, const float* v, int64_t tokens, const int64_t* slots,
                                const int64_t* positions, KvLayout layout, float static_k_scale, float static_v_scale,
                                void* k_cache, void* v_cache, float* k_scales, float* v_scales) {
  const int64_t kv_heads = layout.kv_heads, head_dim = layout.head_dim;
  const KvStorage storage = layout.storage;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (item >= tokens * kv_heads * 2) return;
  const int lane = threadIdx.x % 32;
  const bool is_v = item % 2 == 1;
  const int64_t token = item / 2 / kv_heads, head = item / 2 % kv_heads;
  const float* src = (is_v ? v : k) + (token * kv_heads + head) * head_dim;
  const int64_t position = positions[token];
  const int64_t block = layout.block_table[slots[token] * layout.blocks_per_slot + position / layout.block_size];
  const int64_t cell = (block * layout.block_size + position % layout.block_size) * kv_heads + head;  // (row, head)
  const int64_t offset = cell * head_dim;
  switch (storage) {
    case KvStorage::f32:
      for (int64_t i = lane; i < head_dim; i += 32) static_cast<float*>(is_v ? v_cache : k_cache)[offset + i] = src[i];
      return;
    case KvStorage::bf16:
      for (int64_t i = lane; i < head_dim; i += 32)
        static_cast<__nv_bfloat16*>(is_v ? v_cache : k_cache)[offset + i] = __float2bfloat16_rn(src[i]);
      return;
    case KvStorage::e4m3:
    case KvStorage::e5m2: {
      const bool e4m3 = storage == KvStorage::e4m3;
      float scale = is_v ? static_v_scale : static_k_scale;
      if (scale <= 0.0f) {
        float amax = 0.0f;
        for (int64_t i = lane; i < head_dim; i += 32) amax = fmaxf(amax, fabsf(src[i]));
        amax = warp_max(amax);
        scale = amax > 0.0f && isfinite(amax) ? amax / (e4m3 ? 448.0f : 57344.0f) : 1.0f;
      }
      if (lane == 0) (is_v ? v_scales : k_scales)[cell] = scale;
      const float inverse = 1.0f / scale;
      auto* codes = static_cast<__nv_fp8_storage_t*>(is_v ? v_cache : k_cache);
      for (int64_t i = lane; i < head_dim; i += 32)
        codes[offset + i] = __nv_cvt_float_to_fp8(src[i] * inverse, __NV_SATFINITE, e4m3 ? __NV_E4M3 : __NV_E5M2);
      return;
    }
  }
}

}  // namespace

void launch_kv_write(const float* k, const float* v, int64_t tokens, const int64_t* slots, const int64_t* positions,
                     const KvLayout& layout, float static_k_scale, float static_v_scale, void* k_cache, void* v_cache,
                     float* k_scales, float* v_scales, cudaStream_t s) {
  const int64_t warps = tokens * layout.kv_heads * 2;
  if (warps == 0) return;
  constexpr int kWarpsPerBlock = 8;
  kv_write_kernel<<<static_cast<unsigned>((warps + kWarpsPerBlock - 1) / kWarpsPerBlock), kWarpsPerBlock * 32, 0, s>>>(
      k, v, tokens, slots, positions, layout, static_k_scale, static_v_scale, k_cache, v_cache, k_scales, v_scales);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
