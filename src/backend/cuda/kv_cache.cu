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

// A warp's head row as its lanes hold it: for_each(lane, f) calls f(element, value) for the lane's elements.
// StridedRow reads them from memory (lane l: elements l, l + 32, ... below head_dim); LaneRegisters<n> has
// them in the lane's registers (x[j] is element l + 32j).
struct StridedRow {
  const float* src;
  int64_t head_dim;
  template <typename F>
  __device__ __forceinline__ void for_each(int lane, F f) const {
    for (int64_t i = lane; i < head_dim; i += 32) f(i, src[i]);
  }
};
template <int kPerLane>
struct LaneRegisters {
  const float (&x)[kPerLane];
  template <typename F>
  __device__ __forceinline__ void for_each(int lane, F f) const {
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) f(lane + 32 * j, x[j]);
  }
};

// One warp stores one head's row (head_dim elements) at cell: lane_amax is the lane's part of the row's amax
// (used for a dynamic FP8 scale).
template <typename Row>
__device__ __forceinline__ void store_head(KvStorage storage, const Row& row, int64_t head_dim, int lane,
                                           float lane_amax, float static_scale, int64_t cell, void* cache,
                                           float* scales) {
  const int64_t offset = cell * head_dim;
  switch (storage) {
    case KvStorage::f32:
      row.for_each(lane, [&](int64_t i, float value) { static_cast<float*>(cache)[offset + i] = value; });
      return;
    case KvStorage::bf16:
      row.for_each(lane, [&](int64_t i, float value) {
        static_cast<__nv_bfloat16*>(cache)[offset + i] = __float2bfloat16_rn(value);
      });
      return;
    case KvStorage::e4m3:
    case KvStorage::e5m2: {
      const bool e4m3 = storage == KvStorage::e4m3;
      const float scale = static_scale > 0.0f ? static_scale : fp8_cache_scale(warp_max(lane_amax), e4m3);
      if (lane == 0) scales[cell] = scale;
      const float inverse = 1.0f / scale;
      auto* codes = static_cast<__nv_fp8_storage_t*>(cache);
      row.for_each(lane, [&](int64_t i, float value) {
        codes[offset + i] = __nv_cvt_float_to_fp8(value * inverse, __NV_SATFINITE, e4m3 ? __NV_E4M3 : __NV_E5M2);
      });
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
  store_head(layout.storage, StridedRow{src, head_dim}, head_dim, lane, amax, is_v ? static_v_scale : static_k_scale,
             cache_cell(layout, slots[token], positions[token], head), is_v ? v_cache : k_cache, is_v ? v_scales : k_scales);
}

// The warp's (token, head) of a RoPE + cache write: q heads first, then k's, then v's; token −1 past the end.
struct RopeItem {
  int64_t token, head;
  bool is_q, is_k;
};
__device__ RopeItem rope_item(int64_t tokens, int64_t heads, int64_t kv_heads) {
  const int64_t items_per_token = heads + 2 * kv_heads;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (item >= tokens * items_per_token) return {-1, 0, false, false};
  const int64_t token = item / items_per_token, which = item % items_per_token;
  const bool is_q = which < heads, is_k = !is_q && which < heads + kv_heads;
  return {token, is_q ? which : is_k ? which - heads : which - heads - kv_heads, is_q, is_k};
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
  const RopeItem mine = rope_item(tokens, heads, kv_heads);
  if (mine.token < 0) return;
  const int lane = threadIdx.x % 32;
  const int64_t token = mine.token, head = mine.head;
  const bool is_q = mine.is_q, is_k = mine.is_k;
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
  store_head(layout.storage, StridedRow{src, head_dim}, head_dim, lane, amax, is_k ? static_k_scale : static_v_scale,
             cache_cell(layout, slots[token], positions[token], head), is_k ? k_cache : v_cache, is_k ? k_scales : v_scales);
}

// rope_kv_write_kernel with each warp's row in registers, for head_dim = 32·kPerLane with kPerLane even: lane l
// holds elements l + 32j, so both halves of every rotate-half pair (i, i + head_dim/2) are the lane's own and
// the row never goes through memory between the product's scaling, the rotation and the cache store (two
// dependent global round trips and two __syncwarp fewer a warp; 22% off the kernel at 8B b64, docs/PERFORMANCE.md
// version 19). The same operations in the same order: the same bits in every output.
template <int kPerLane>
__global__ void rope_kv_write_rows_kernel(float* q, float* k, const float* v, int64_t tokens, int64_t heads,
                                          const int64_t* slots, const int64_t* positions,
                                          const float* inverse_frequencies, KvLayout layout, float static_k_scale,
                                          float static_v_scale, void* k_cache, void* v_cache, float* k_scales,
                                          float* v_scales, QkvProduct source) {
  static_assert(kPerLane % 2 == 0, "pairs within a lane need an even count");
  constexpr int kHeadDim = 32 * kPerLane, kHalf = kPerLane / 2;
  await_earlier_kernels();
  const int64_t kv_heads = layout.kv_heads;
  const RopeItem mine = rope_item(tokens, heads, kv_heads);
  if (mine.token < 0) return;
  const int lane = threadIdx.x % 32;
  const int64_t token = mine.token, head = mine.head;
  const bool is_q = mine.is_q, is_k = mine.is_k;
  // K and V: the cache cell first, so that its table load overlaps the row's.
  const int64_t cell = is_q ? 0 : cache_cell(layout, slots[token], positions[token], head);
  const int64_t v_offset = (token * kv_heads + head) * kHeadDim;
  float* const row = is_q ? q + (token * heads + head) * kHeadDim : is_k ? k + (token * kv_heads + head) * kHeadDim : nullptr;
  float x[kPerLane];
  if (source.product) {
    const int64_t first = (is_q ? source.first_col[0] : is_k ? source.first_col[1] : source.first_col[2]) + head * kHeadDim;
    const float* from = source.product + token * source.cols + first;
    const float row_scale = source.row_scales[token];
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) x[j] = from[lane + 32 * j] * (row_scale * source.col_scales[first + lane + 32 * j]);
    if (!is_q && !is_k) {
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) source.values_out[v_offset + lane + 32 * j] = x[j];
    }
  } else {
    const float* src = is_q || is_k ? row : v + v_offset;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) x[j] = src[lane + 32 * j];
  }
  float amax = 0.0f;
  if (is_q || is_k) {
    const float position = static_cast<float>(positions[token]);
#pragma unroll
    for (int j = 0; j < kHalf; ++j) {
      float sine, cosine;
      sincosf(position * inverse_frequencies[lane + 32 * j], &sine, &cosine);
      const float a = x[j], b = x[j + kHalf];
      const float ra = a * cosine - b * sine, rb = b * cosine + a * sine;
      x[j] = ra;
      x[j + kHalf] = rb;
      row[lane + 32 * j] = ra;
      row[lane + 32 * (j + kHalf)] = rb;
      amax = fmaxf(amax, fmaxf(fabsf(ra), fabsf(rb)));
    }
    if (is_q) return;
  } else {
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) amax = fmaxf(amax, fabsf(x[j]));
  }
  store_head(layout.storage, LaneRegisters<kPerLane>{x}, kHeadDim, lane, amax, is_k ? static_k_scale : static_v_scale,
             cell, is_k ? k_cache : v_cache, is_k ? k_scales : v_scales);
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
  // Head sizes of 64 and 128 (every Llama 3 and SmolLM2 shape, both tested bit for bit against rope + kv_write)
  // keep the row in registers; others take the general kernel.
  auto* kernel = layout.head_dim == 64    ? rope_kv_write_rows_kernel<2>
                 : layout.head_dim == 128 ? rope_kv_write_rows_kernel<4>
                                          : rope_kv_write_kernel;
  launch_kernel(kernel, shape, s, q, k, v, tokens, heads, slots, positions, inverse_frequencies, layout, static_k_scale,
                static_v_scale, k_cache, v_cache, k_scales, v_scales, source);
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
