// Causal GQA attention over the cache, one block per (token, query head). Bytes: the slot's K and V
// up to the token's position (kv_dim · positions · element size · 2), shared by the heads of a group
// through L2; FLOPs: 4 · head_dim · positions per head. Each warp takes chunks of 32 positions:
// a lane scores one position (a whole q·k dot product from 16-byte loads), then the warp folds the chunk
// into its running softmax with lanes splitting head_dim for the V sum; warps merge at the end.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace octet::backend::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxHeadDim = 256;
constexpr int kMaxDimsPerLane = kMaxHeadDim / 32;

template <KvStorage S>
__device__ __forceinline__ float load_element(const void* cache, int64_t index) {
  if constexpr (S == KvStorage::f32) return static_cast<const float*>(cache)[index];
  if constexpr (S == KvStorage::bf16) return __bfloat162float(static_cast<const __nv_bfloat16*>(cache)[index]);
  if constexpr (S == KvStorage::e4m3 || S == KvStorage::e5m2) {
    __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<const __nv_fp8_storage_t*>(cache)[index],
                                           S == KvStorage::e4m3 ? __NV_E4M3 : __NV_E5M2);
    return __half2float(*reinterpret_cast<__half*>(&h));
  }
  return 0.0f;
}

__device__ __forceinline__ float2 widen_fp8_pair(uint16_t pair, __nv_fp8_interpretation_t kind) {
  __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair), kind);
  return __half22float2(*reinterpret_cast<__half2*>(&raw));
}

// q · k for one cached row, read in 16-byte pieces (head_dim is a multiple of 16), all loads of the
// row issued before the arithmetic that needs them.
template <KvStorage S>
__device__ __forceinline__ float dot_row(const float* query, const void* cache, int64_t row_offset, int64_t head_dim) {
  float dot = 0.0f;
  if constexpr (S == KvStorage::e4m3 || S == KvStorage::e5m2) {
    constexpr __nv_fp8_interpretation_t kind = S == KvStorage::e4m3 ? __NV_E4M3 : __NV_E5M2;
    const uint4* row = reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(cache) + row_offset);
    for (int64_t piece = 0; piece < head_dim / 16; ++piece) {
      const uint4 v = row[piece];
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const float2 a = widen_fp8_pair(static_cast<uint16_t>(words[w] & 0xFFFF), kind);
        const float2 b = widen_fp8_pair(static_cast<uint16_t>(words[w] >> 16), kind);
        const float* qv = query + piece * 16 + w * 4;
        dot = fmaf(qv[0], a.x, dot);
        dot = fmaf(qv[1], a.y, dot);
        dot = fmaf(qv[2], b.x, dot);
        dot = fmaf(qv[3], b.y, dot);
      }
    }
  } else if constexpr (S == KvStorage::bf16) {
    const uint4* row = reinterpret_cast<const uint4*>(static_cast<const __nv_bfloat16*>(cache) + row_offset);
    for (int64_t piece = 0; piece < head_dim / 8; ++piece) {
      const uint4 v = row[piece];
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        const float2 f = __bfloat1622float2(pairs[w]);
        dot = fmaf(query[piece * 8 + w * 2], f.x, dot);
        dot = fmaf(query[piece * 8 + w * 2 + 1], f.y, dot);
      }
    }
  } else {
    const float4* row = reinterpret_cast<const float4*>(static_cast<const float*>(cache) + row_offset);
    for (int64_t piece = 0; piece < head_dim / 4; ++piece) {
      const float4 v = row[piece];
      dot = fmaf(query[piece * 4], v.x, dot);
      dot = fmaf(query[piece * 4 + 1], v.y, dot);
      dot = fmaf(query[piece * 4 + 2], v.z, dot);
      dot = fmaf(query[piece * 4 + 3], v.w, dot);
    }
  }
  return dot;
}

template <KvStorage S>
__global__ void __launch_bounds__(kWarps * 32)
attention_kernel(const float* q, int64_t heads, int64_t kv_heads, int64_t head_dim, const int64_t* slots,
                 const int64_t* positions, int64_t max_positions, const void* k_cache, const void* v_cache,
                 const float* k_scales, const float* v_scales, float* out) {
  __shared__ float query[kMaxHeadDim];
  __shared__ float warp_max_score[kWarps], warp_sum[kWarps];
  __shared__ float warp_acc[kWarps][kMaxHeadDim];
  constexpr bool kScaled = S == KvStorage::e4m3 || S == KvStorage::e5m2;

  const int64_t token = blockIdx.x / heads, head = blockIdx.x % heads;
  const int64_t kv_head = head / (heads / kv_heads);
  const int64_t last = positions[token];
  const int64_t slot_base = slots[token] * max_positions;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float softmax_scale = rsqrtf(static_cast<float>(head_dim));
  for (int64_t i = threadIdx.x; i < head_dim; i += blockDim.x)
    query[i] = q[(token * heads + head) * head_dim + i] * softmax_scale;
  __syncthreads();

  const int dims_per_lane = static_cast<int>((head_dim + 31) / 32);
  float running_max = -INFINITY, running_sum = 0.0f;
  float acc[kMaxDimsPerLane];
#pragma unroll
  for (int d = 0; d < kMaxDimsPerLane; ++d) acc[d] = 0.0f;

  for (int64_t chunk = static_cast<int64_t>(warp) * 32; chunk <= last; chunk += kWarps * 32) {
    const int64_t position = chunk + lane;
    float score = -INFINITY;
    if (position <= last) {
      const int64_t cell = (slot_base + position) * kv_heads + kv_head;
      const float dot = dot_row<S>(query, k_cache, cell * head_dim, head_dim);
      score = kScaled ? dot * k_scales[cell] : dot;
    }
    float chunk_max = score;
    for (int offset = 16; offset > 0; offset /= 2) chunk_max = fmaxf(chunk_max, __shfl_xor_sync(0xFFFFFFFF, chunk_max, offset));
    const float new_max = fmaxf(running_max, chunk_max);
    const float correction = __expf(running_max - new_max);  // 0 on the first chunk (running_max = -inf)
    const float weight = position <= last ? __expf(score - new_max) : 0.0f;
    float weight_sum = weight;
    for (int offset = 16; offset > 0; offset /= 2) weight_sum += __shfl_xor_sync(0xFFFFFFFF, weight_sum, offset);
    running_sum = running_sum * correction + weight_sum;
    running_max = new_max;
#pragma unroll
    for (int d = 0; d < kMaxDimsPerLane; ++d) acc[d] *= correction;
    const int64_t remaining = last - chunk + 1;
    const int64_t valid = remaining < 32 ? remaining : 32;
    for (int64_t j = 0; j < valid; ++j) {
      const float p = __shfl_sync(0xFFFFFFFF, weight, static_cast<int>(j));
      const int64_t cell = (slot_base + chunk + j) * kv_heads + kv_head;
      const float v_scale = kScaled ? v_scales[cell] : 1.0f;
#pragma unroll
      for (int d = 0; d < kMaxDimsPerLane; ++d) {
        const int64_t dim = lane + 32 * d;
        if (d < dims_per_lane && dim < head_dim) acc[d] = fmaf(p * v_scale, load_element<S>(v_cache, cell * head_dim + dim), acc[d]);
      }
    }
  }

  if (lane == 0) {
    warp_max_score[warp] = running_max;
    warp_sum[warp] = running_sum;
  }
#pragma unroll
  for (int d = 0; d < kMaxDimsPerLane; ++d) {
    const int64_t dim = lane + 32 * d;
    if (d < dims_per_lane && dim < head_dim) warp_acc[warp][dim] = acc[d];
  }
  __syncthreads();
  float global_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w) global_max = fmaxf(global_max, warp_max_score[w]);
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w)
    if (warp_sum[w] > 0.0f) total += warp_sum[w] * __expf(warp_max_score[w] - global_max);
  for (int64_t i = threadIdx.x; i < head_dim; i += blockDim.x) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (warp_sum[w] > 0.0f) sum += warp_acc[w][i] * __expf(warp_max_score[w] - global_max);
    out[(token * heads + head) * head_dim + i] = sum / total;
  }
}

}  // namespace

void launch_attention(const float* q, int64_t tokens, int64_t heads, int64_t kv_heads, int64_t head_dim,
                      const int64_t* slots, const int64_t* positions, int64_t max_positions, KvStorage storage,
                      const void* k_cache, const void* v_cache, const float* k_scales, const float* v_scales, float* out,
                      cudaStream_t s) {
  if (head_dim > kMaxHeadDim || head_dim % 16 != 0)
    fail("attention: head_dim {} must be a multiple of 16 up to {}", head_dim, kMaxHeadDim);
  if (heads % kv_heads != 0) fail("attention: {} heads are not a multiple of {} kv heads", heads, kv_heads);
  if (tokens == 0) return;
  const unsigned blocks = static_cast<unsigned>(tokens * heads);
  switch (storage) {
    case KvStorage::f32:
      attention_kernel<KvStorage::f32><<<blocks, kWarps * 32, 0, s>>>(q, heads, kv_heads, head_dim, slots, positions, max_positions, k_cache, v_cache, k_scales, v_scales, out);
      break;
    case KvStorage::bf16:
      attention_kernel<KvStorage::bf16><<<blocks, kWarps * 32, 0, s>>>(q, heads, kv_heads, head_dim, slots, positions, max_positions, k_cache, v_cache, k_scales, v_scales, out);
      break;
    case KvStorage::e4m3:
      attention_kernel<KvStorage::e4m3><<<blocks, kWarps * 32, 0, s>>>(q, heads, kv_heads, head_dim, slots, positions, max_positions, k_cache, v_cache, k_scales, v_scales, out);
      break;
    case KvStorage::e5m2:
      attention_kernel<KvStorage::e5m2><<<blocks, kWarps * 32, 0, s>>>(q, heads, kv_heads, head_dim, slots, positions, max_positions, k_cache, v_cache, k_scales, v_scales, out);
      break;
  }
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
