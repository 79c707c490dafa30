#pragma once
// Device-side access to the paged KV pool (KvLayout in kernels.h): (slot, position) to a pool row,
// and cached elements widened to float32.
#include "backend/canonical_numerics.h"
#include "backend/cuda/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace octet::backend::cuda {

// pool_row in two steps, so that a kernel can issue the table load well before it needs the row
// (the grouped decode attention looks up a tile's rows one tile ahead): the pool block of `position`,
// then the row of `position` in that block.
__device__ __forceinline__ int32_t pool_block(const KvLayout& layout, const int32_t* table, int64_t position) {
  const int p = static_cast<int>(position);
  return table[layout.block_shift >= 0 ? p >> layout.block_shift : p / static_cast<int>(layout.block_size)];
}
__device__ __forceinline__ int64_t pool_row_in(const KvLayout& layout, int32_t block, int64_t position) {
  const int p = static_cast<int>(position);
  if (layout.block_shift >= 0) return (static_cast<int64_t>(block) << layout.block_shift) + (p & ((1 << layout.block_shift) - 1));
  const int b = static_cast<int>(layout.block_size);
  return static_cast<int64_t>(block) * b + p % b;
}
// The pool row holding `position` of the slot whose block table row is `table`. Positions and
// block sizes stay far below 2^31, so 32-bit arithmetic; a power-of-two block size (the default
// 16) shifts instead of dividing.
__device__ __forceinline__ int64_t pool_row(const KvLayout& layout, const int32_t* table, int64_t position) {
  return pool_row_in(layout, pool_block(layout, table, position), position);
}

// The dynamic scale of a head row stored in an FP8 cache (where the checkpoint gives no static one): the
// row's amax over the format's largest value, at least FLT_MIN, 1 for an all-zero or non-finite row —
// the CPU cache's scale (fp8::scale_from_amax), so reproducible numerics can share this write.
__device__ __forceinline__ float fp8_cache_scale(float amax, bool e4m3) {
  return canonical::fp8_scale_from_amax(amax, e4m3 ? 448.0f : 57344.0f);
}

// The cache cell (pool row, kv head) of a token.
__device__ __forceinline__ int64_t cache_cell(const KvLayout& layout, int64_t slot, int64_t position, int64_t head) {
  return pool_row(layout, layout.block_table + slot * layout.blocks_per_slot, position) * layout.kv_heads + head;
}

__device__ __forceinline__ float2 widen_fp8_pair(uint16_t pair, __nv_fp8_interpretation_t kind) {
  __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair), kind);
  return __half22float2(*reinterpret_cast<__half2*>(&raw));
}

// Sixteen consecutive elements of a cached row as float32, from 16-byte loads.
template <KvStorage S>
__device__ __forceinline__ void load16(const void* cache, int64_t element_offset, float out[16]) {
  if constexpr (S == KvStorage::e4m3 || S == KvStorage::e5m2) {
    constexpr __nv_fp8_interpretation_t kind = S == KvStorage::e4m3 ? __NV_E4M3 : __NV_E5M2;
    const uint4 v = *reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(cache) + element_offset);
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const float2 a = widen_fp8_pair(static_cast<uint16_t>(words[w] & 0xFFFF), kind);
      const float2 b = widen_fp8_pair(static_cast<uint16_t>(words[w] >> 16), kind);
      out[4 * w] = a.x;
      out[4 * w + 1] = a.y;
      out[4 * w + 2] = b.x;
      out[4 * w + 3] = b.y;
    }
  } else if constexpr (S == KvStorage::bf16) {
    const uint4* row = reinterpret_cast<const uint4*>(static_cast<const __nv_bfloat16*>(cache) + element_offset);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const uint4 v = row[half];
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const float2 f = __bfloat1622float2(pairs[w]);
        out[8 * half + 2 * w] = f.x;
        out[8 * half + 2 * w + 1] = f.y;
      }
    }
  } else {
    const float4* row = reinterpret_cast<const float4*>(static_cast<const float*>(cache) + element_offset);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float4 v = row[q];
      out[4 * q] = v.x;
      out[4 * q + 1] = v.y;
      out[4 * q + 2] = v.z;
      out[4 * q + 3] = v.w;
    }
  }
}

}  // namespace octet::backend::cuda
