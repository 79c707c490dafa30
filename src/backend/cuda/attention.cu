// Causal GQA attention over the cache (flash-decoding) for decode tokens. Bytes: the slot's K and V
// up to the token's position (kv_dim · positions · element size · 2); FLOPs: 4 · head_dim ·
// positions per head: decode is bound by reading the cache. Two kernels (launch_attention picks):
// the grouped one (v2, default: attention_grouped.cu) reads each K/V row once for the whole GQA
// group on tensor cores and merges its splits in the same launch; v1 (OCTET_CUDA_DECODE_ATTENTION=v1, and float32
// caches, head_dim other than 64/128, groups over 8) takes one query head per block on CUDA cores,
// the group's heads sharing rows through L2, and merges splits in a second kernel. Long runs of
// prompt tokens go to the tensor-core kernel of attention_prefill.cu instead (the backend picks, per
// run), which reads each K/V tile once per 64 rows.
#include "backend/cuda/attention_grouped.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/kv_layout.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <tuple>

namespace octet::backend::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxHeadDim = 256;
constexpr int64_t kPositionsPerSplit = 256;
constexpr int64_t kTargetBlocks = 1024;
// The merge kernel keeps a weight per split in shared memory (a static array: the dynamic-size one
// read out of bounds under compute-sanitizer); one item at a full 131,072-position context needs 512.
constexpr int kMaxSplits = 1024;

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

// ---- v1 ----
// One block per (token, head, split of the token's positions into `splits` spans of a multiple of
// 32). Scores: a lane per position. V sums: the
// warp reads `rows_per_step` cached rows at a time, each lane 16 dims of one row (16-byte loads),
// and folds lanes holding the same dims together at the end. With one split the block writes the
// output; otherwise it writes (max, sum, unnormalised accumulator) for attention_combine_kernel.
// kHeadDim > 0 fixes head_dim at compile time (64 and 128, Llama's): the K-row and V-row loops then
// unroll, so every load of a chunk is in flight at once instead of one after another.
template <KvStorage S, int kHeadDim>
__global__ void __launch_bounds__(kWarps * 32)
attention_kernel(const float* q, int64_t heads, const int64_t* slots, const int64_t* positions, KvLayout layout,
                 const void* k_cache, const void* v_cache, const float* k_scales, const float* v_scales, int splits,
                 float* out, float* partial, const int32_t* token_list) {
  await_earlier_kernels();
  __shared__ float query[kMaxHeadDim];
  __shared__ float warp_max_score[kWarps], warp_sum[kWarps];
  __shared__ float warp_acc[kWarps][kMaxHeadDim];
  constexpr bool kScaled = S == KvStorage::e4m3 || S == KvStorage::e5m2;

  const int64_t item = blockIdx.x;  // listed token * heads + head
  const int64_t head = item % heads, token = token_list ? token_list[item / heads] : item / heads;
  const int64_t q_row = token * heads + head;  // of q and out
  const int split = blockIdx.y;
  const int64_t kv_heads = layout.kv_heads;
  const int64_t head_dim = kHeadDim > 0 ? kHeadDim : layout.head_dim;
  const int64_t kv_head = head / (heads / kv_heads);
  const int64_t last = positions[token];
  const int64_t span = ((last + splits) / splits + 31) / 32 * 32;  // ceil((last + 1) / splits), rounded up to 32
  const int64_t begin = split * span, end = min(last + 1, begin + span);  // positions [begin, end)
  const int32_t* table = layout.block_table + slots[token] * layout.blocks_per_slot;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int pieces = static_cast<int>(head_dim / 16), rows_per_step = 32 / pieces;
  const int my_row = lane / pieces, my_piece = lane % pieces;
  const float softmax_scale = rsqrtf(static_cast<float>(head_dim));
  for (int64_t i = threadIdx.x; i < head_dim; i += blockDim.x)
    query[i] = q[q_row * head_dim + i] * softmax_scale;
  __syncthreads();

  float running_max = -INFINITY, running_sum = 0.0f;
  float acc[16];
#pragma unroll
  for (int d = 0; d < 16; ++d) acc[d] = 0.0f;

  for (int64_t chunk = begin + static_cast<int64_t>(warp) * 32; chunk < end; chunk += kWarps * 32) {
    const int64_t position = chunk + lane;
    const bool valid = position < end;
    float score = -INFINITY;
    if (valid) {
      const int64_t cell = pool_row(layout, table, position) * kv_heads + kv_head;
      const float dot = dot_row<S>(query, k_cache, cell * head_dim, head_dim);
      score = kScaled ? dot * k_scales[cell] : dot;
    }
    float chunk_max = score;
    for (int offset = 16; offset > 0; offset /= 2) chunk_max = fmaxf(chunk_max, __shfl_xor_sync(0xFFFFFFFF, chunk_max, offset));
    const float new_max = fmaxf(running_max, chunk_max);
    const float correction = __expf(running_max - new_max);  // 0 on the first chunk
    float weight = valid ? __expf(score - new_max) : 0.0f;
    float weight_sum = weight;
    for (int offset = 16; offset > 0; offset /= 2) weight_sum += __shfl_xor_sync(0xFFFFFFFF, weight_sum, offset);
    running_sum = running_sum * correction + weight_sum;
    running_max = new_max;
    if (kScaled && valid) weight *= v_scales[pool_row(layout, table, position) * kv_heads + kv_head];
#pragma unroll
    for (int d = 0; d < 16; ++d) acc[d] *= correction;
#pragma unroll
    for (int step = 0; step < 32; step += rows_per_step) {
      const int row = step + my_row;
      const float p = __shfl_sync(0xFFFFFFFF, weight, row);
      if (chunk + row < end) {
        const int64_t cell = pool_row(layout, table, chunk + row) * kv_heads + kv_head;
        float v[16];
        load16<S>(v_cache, cell * head_dim + my_piece * 16, v);
#pragma unroll
        for (int d = 0; d < 16; ++d) acc[d] = fmaf(p, v[d], acc[d]);
      }
    }
  }
  // Lanes with the same piece hold partial sums over different rows: fold them.
  for (int offset = pieces; offset < 32; offset *= 2)
#pragma unroll
    for (int d = 0; d < 16; ++d) acc[d] += __shfl_xor_sync(0xFFFFFFFF, acc[d], offset);
  if (lane == 0) {
    warp_max_score[warp] = running_max;
    warp_sum[warp] = running_sum;
  }
  if (my_row == 0)
#pragma unroll
    for (int d = 0; d < 16; ++d) warp_acc[warp][my_piece * 16 + d] = acc[d];
  __syncthreads();

  float block_max = -INFINITY;
  for (int w = 0; w < kWarps; ++w)
    if (warp_sum[w] > 0.0f) block_max = fmaxf(block_max, warp_max_score[w]);
  float block_sum = 0.0f;
  for (int w = 0; w < kWarps; ++w)
    if (warp_sum[w] > 0.0f) block_sum += warp_sum[w] * __expf(warp_max_score[w] - block_max);
  if (splits == 1) {
    for (int64_t i = threadIdx.x; i < head_dim; i += blockDim.x) {
      float sum = 0.0f;
      for (int w = 0; w < kWarps; ++w)
        if (warp_sum[w] > 0.0f) sum += warp_acc[w][i] * __expf(warp_max_score[w] - block_max);
      out[q_row * head_dim + i] = sum / block_sum;
    }
    return;
  }
  float* mine = partial + (item * splits + split) * (head_dim + 2);
  if (threadIdx.x == 0) {
    mine[0] = block_max;
    mine[1] = block_sum;  // 0 when this split holds no position of the token
  }
  for (int64_t i = threadIdx.x; i < head_dim; i += blockDim.x) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w)
      if (warp_sum[w] > 0.0f) sum += warp_acc[w][i] * __expf(warp_max_score[w] - block_max);
    mine[2 + i] = sum;
  }
}

// Merges the splits of each (token, head): softmax statistics rescaled to the common maximum. The
// per-split weights are computed once, by a thread per split, into shared memory, so the loops over
// the splits are independent loads rather than three dependent chains.
constexpr int kCombineThreads = 128;

__device__ __forceinline__ float combine_reduce(float value, bool take_max, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xFFFFFFFF, value, offset);
    value = take_max ? fmaxf(value, other) : value + other;
  }
  if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = value;
  __syncthreads();
  value = shared[0];
  for (int w = 1; w < kCombineThreads / 32; ++w) value = take_max ? fmaxf(value, shared[w]) : value + shared[w];
  __syncthreads();
  return value;
}

__global__ void __launch_bounds__(kCombineThreads)
attention_combine_kernel(const float* partial, int splits, int64_t heads, int64_t head_dim, const int32_t* token_list,
                         float* out) {
  await_earlier_kernels();
  __shared__ float split_weight[kMaxSplits];
  __shared__ float reduce[kCombineThreads / 32];
  const int64_t item = blockIdx.x, stride = head_dim + 2;
  const int64_t q_row = token_list ? token_list[item / heads] * heads + item % heads : item;
  const float* parts = partial + item * splits * stride;
  float local_max = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += blockDim.x)
    if (parts[s * stride + 1] > 0.0f) local_max = fmaxf(local_max, parts[s * stride]);
  const float global_max = combine_reduce(local_max, true, reduce);
  float local_total = 0.0f;
  for (int s = threadIdx.x; s < splits; s += blockDim.x) {
    const float sum = parts[s * stride + 1];
    const float weight = sum > 0.0f ? __expf(parts[s * stride] - global_max) : 0.0f;  // empty splits count 0
    split_weight[s] = weight;
    local_total += sum * weight;
  }
  const float total = combine_reduce(local_total, false, reduce);  // its barrier also publishes split_weight
  for (int64_t i = threadIdx.x; i < head_dim; i += blockDim.x) {
    float sum = 0.0f;
#pragma unroll 4
    for (int s = 0; s < splits; ++s) sum += parts[s * stride + 2 + i] * split_weight[s];
    out[q_row * head_dim + i] = sum / total;
  }
}

template <KvStorage S, typename... Args>
void launch_attention_kernel(dim3 grid, cudaStream_t s, const Args&... args) {
  const int64_t head_dim = std::get<4>(std::tie(args...)).head_dim;  // the KvLayout
  if (head_dim == 128) launch_kernel(attention_kernel<S, 128>, LaunchShape{grid, dim3(kWarps * 32)}, s, args...);
  else if (head_dim == 64) launch_kernel(attention_kernel<S, 64>, LaunchShape{grid, dim3(kWarps * 32)}, s, args...);
  else launch_kernel(attention_kernel<S, 0>, LaunchShape{grid, dim3(kWarps * 32)}, s, args...);
}


// v1's split count: enough blocks to fill the GPU several times over; a full-length slot keeps
// >= 256 positions per split.
int attention_splits(int64_t tokens, int64_t heads, int64_t max_context) {
  const int64_t items = tokens * heads;
  const int64_t by_length = (max_context + kPositionsPerSplit - 1) / kPositionsPerSplit;
  const int64_t by_occupancy = (kTargetBlocks + items - 1) / items;
  return static_cast<int>(std::clamp<int64_t>(std::min(by_length, by_occupancy), 1, kMaxSplits));
}

}  // namespace

AttentionScratch attention_scratch(int64_t tokens, int64_t heads, int64_t max_context, const KvLayout& layout,
                                   DecodeAttention kernel) {
  const bool grouped = kernel == DecodeAttention::grouped && grouped_attention_fits(layout, heads);
  const int splits = grouped ? grouped_attention_splits(tokens * layout.kv_heads, max_context)
                             : attention_splits(tokens, heads, max_context);
  AttentionScratch need;
  if (splits > 1) need.floats = static_cast<size_t>(tokens * heads * splits * (layout.head_dim + 2));
  if (grouped) need.counters = static_cast<size_t>(tokens * layout.kv_heads);
  return need;
}

// The one launch site of both kernels.
void launch_attention(const float* q, int64_t tokens, int64_t heads, const int64_t* slots, const int64_t* positions,
                      int64_t max_context, const KvLayout& layout, const void* k_cache, const void* v_cache,
                      const float* k_scales, const float* v_scales, float* scratch, uint32_t* counters, float* out,
                      cudaStream_t s, DecodeAttention kernel, const int32_t* token_list) {
  const int64_t kv_heads = layout.kv_heads, head_dim = layout.head_dim;
  if (head_dim > kMaxHeadDim || head_dim % 16 != 0 || 32 % (head_dim / 16) != 0)
    fail("attention: head_dim {} must be 16, 32, 64, 128 or 256", head_dim);
  if (heads % kv_heads != 0) fail("attention: {} heads are not a multiple of {} kv heads", heads, kv_heads);
  if (tokens == 0) return;
  if (kernel == DecodeAttention::grouped && grouped_attention_fits(layout, heads)) {
    const int64_t items = tokens * kv_heads;
    launch_grouped_attention(q, static_cast<int>(heads / kv_heads), slots, positions, layout, k_cache, v_cache, k_scales,
                             v_scales, items, grouped_attention_splits(items, max_context), out, scratch, counters,
                             token_list, s);
    return;
  }
  const int splits = attention_splits(tokens, heads, max_context);
  const dim3 grid(static_cast<unsigned>(tokens * heads), static_cast<unsigned>(splits));
  switch (layout.storage) {
    case KvStorage::f32: launch_attention_kernel<KvStorage::f32>(grid, s, q, heads, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, scratch, token_list); break;
    case KvStorage::bf16: launch_attention_kernel<KvStorage::bf16>(grid, s, q, heads, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, scratch, token_list); break;
    case KvStorage::e4m3: launch_attention_kernel<KvStorage::e4m3>(grid, s, q, heads, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, scratch, token_list); break;
    case KvStorage::e5m2: launch_attention_kernel<KvStorage::e5m2>(grid, s, q, heads, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, scratch, token_list); break;
  }
  OCTET_CUDA_LAUNCH_CHECK();
  if (splits > 1) {
    const LaunchShape shape{dim3(static_cast<unsigned>(tokens * heads)), dim3(kCombineThreads)};
    launch_kernel(attention_combine_kernel, shape, s, scratch, splits, heads, head_dim, token_list, out);
    OCTET_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace octet::backend::cuda
