// K/V of a batch into the paged cache (layout in paged_kv.h). Bytes: reads 2 · tokens · kv_dim · 4,
// writes 2 · tokens · kv_dim · element bytes (+ a 4-byte scale per (token, head) for FP8); no real
// arithmetic. FP8 scales are chosen exactly as the CPU cache does (fp8::scale_from_amax of the
// (token, head) vector, or the checkpoint's static scale), so both caches hold the same codes.
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cfloat>

namespace octet::backend::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

// One warp per (token, kv head, K or V).
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
kv_write_kernel(const float* __restrict__ k, const float* __restrict__ v, int64_t tokens,
                const int64_t* __restrict__ slots, const int64_t* __restrict__ positions, PagedKvView cache,
                int64_t layer, float static_k_scale, float static_v_scale) {
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int64_t kv_heads = cache.kv_heads, head_dim = cache.head_dim;
  if (item >= tokens * kv_heads * 2) return;
  const int lane = threadIdx.x % 32;
  const bool is_v = item % 2 == 1;
  const int64_t token = item / 2 / kv_heads, head = item / 2 % kv_heads;
  const int64_t position = positions[token];
  const int32_t block = cache.physical_block(slots[token], position);
  if (block < 0) return;  // the host allocates every written position's block before launching
  uint8_t* base = cache.layer_base(block, layer);
  const int64_t cell = head * kKvBlockPositions + position % kKvBlockPositions;  // (head, position in block)
  uint8_t* values = base + (is_v ? cache.values_bytes() : 0) + cell * head_dim * cache.element_bytes();
  const float* src = (is_v ? v : k) + (token * kv_heads + head) * head_dim;

  switch (cache.storage) {
    case KvStorage::f32:
      for (int64_t i = lane; i < head_dim; i += 32) reinterpret_cast<float*>(values)[i] = src[i];
      return;
    case KvStorage::bf16:
      for (int64_t i = lane; i < head_dim; i += 32)
        reinterpret_cast<__nv_bfloat16*>(values)[i] = __float2bfloat16_rn(src[i]);
      return;
    case KvStorage::e4m3:
    case KvStorage::e5m2: {
      const bool e4m3 = cache.storage == KvStorage::e4m3;
      float scale = is_v ? static_v_scale : static_k_scale;
      if (scale <= 0.0f) {
        float amax = 0.0f;
        for (int64_t i = lane; i < head_dim; i += 32) amax = fmaxf(amax, fabsf(src[i]));
        amax = warp_max(amax);
        scale = amax == 0.0f ? 1.0f : fmaxf(amax / (e4m3 ? 448.0f : 57344.0f), FLT_MIN);
      }
      float* scales = reinterpret_cast<float*>(base + 2 * cache.values_bytes() + (is_v ? cache.scales_bytes() : 0));
      if (lane == 0) scales[cell] = scale;
      const float inverse = 1.0f / scale;
      for (int64_t i = lane; i < head_dim; i += 32)
        values[i] = static_cast<uint8_t>(
            __nv_cvt_float_to_fp8(src[i] * inverse, __NV_SATFINITE, e4m3 ? __NV_E4M3 : __NV_E5M2));
      return;
    }
  }
}

}  // namespace

void launch_kv_write(const float* k, const float* v, int64_t tokens, const int64_t* slots, const int64_t* positions,
                     const PagedKvView& cache, int64_t layer, float static_k_scale, float static_v_scale,
                     cudaStream_t s) {
  const int64_t warps = tokens * cache.kv_heads * 2;
  if (warps == 0) return;
  if (layer < 0 || layer >= cache.layers) fail("kv_write: layer {} outside [0, {})", layer, cache.layers);
  const int64_t blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7FFFFFFF) fail("kv_write: {} tokens exceed one launch", tokens);
  kv_write_kernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, s>>>(k, v, tokens, slots, positions, cache,
                                                                               layer, static_k_scale, static_v_scale);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
