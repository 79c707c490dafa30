// Causal GQA attention over the paged KV cache (paged_kv.h), for prefill and decode alike.
//
// One block per (token, kv head, split): the block serves all `group` query heads that share the kv
// head, so each K/V element is read once per group instead of once per head. It walks its range of
// positions in chunks of 32: K and V of the chunk are widened into shared memory (FP8 codes times
// their (position, head) scale), scores q·k/√d for every (head, position) pair, an online-softmax
// update per head (running max and sum, as in FlashAttention), and the weighted V sum into
// per-thread float32 accumulators. With splits > 1 (flash-decoding: long sequences and few tokens,
// where tokens × kv heads blocks would leave most SMs idle), each split leaves an unnormalized partial
// (acc, max, sum) in the workspace and attention_combine merges them.
//
// Roofline, decode (one token per sequence, L positions): bytes 2 · L · kv_dim · element bytes (+
// scales) per layer and sequence; FLOPs 4 · L · heads · head_dim. With FP8 KV and group 8 that is
// 16 FLOP per KV byte: on CUDA cores this kernel is near the float32 FMA ceiling, not the memory
// ceiling, at long contexts (tensor-core attention is listed as not done in docs/CUDA_NOTES.md).
// Prefill: every token re-reads its prefix (from L2, shared by the tokens of a sequence).
#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 32;  // positions per step: one per lane in the softmax update
constexpr int kMaxAccumulators = 16;  // per thread: group · head_dim ≤ 16 · 128
constexpr int64_t kMaxGroupDims = kMaxAccumulators * kThreads;

struct SharedLayout {
  int64_t query, keys, values, probabilities, running_max, running_sum, correction, floats;
  __host__ __device__ SharedLayout(int64_t group, int64_t head_dim) {
    query = 0;                                            // [group][head_dim], pre-scaled by 1/√d
    keys = query + group * head_dim;                      // [kChunk][head_dim + 1]: +1 avoids bank conflicts
    values = keys + kChunk * (head_dim + 1);              // [kChunk][head_dim]
    probabilities = values + kChunk * head_dim;           // [group][kChunk]
    running_max = probabilities + group * kChunk;         // [group]
    running_sum = running_max + group;                    // [group]
    correction = running_sum + group;                     // [group]
    floats = correction + group;
  }
};

// Four consecutive cache elements (16-byte aligned groups: head_dim % 4 == 0) as float.
__device__ __forceinline__ float4 load4(const uint8_t* values, int64_t element, KvStorage storage) {
  switch (storage) {
    case KvStorage::f32: return *reinterpret_cast<const float4*>(values + element * 4);
    case KvStorage::bf16: {
      const uint2 raw = *reinterpret_cast<const uint2*>(values + element * 2);
      const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
      const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
      return make_float4(lo.x, lo.y, hi.x, hi.y);
    }
    case KvStorage::e4m3:
    case KvStorage::e5m2: {
      const uint32_t raw = *reinterpret_cast<const uint32_t*>(values + element);
      const __nv_fp8_interpretation_t kind = storage == KvStorage::e4m3 ? __NV_E4M3 : __NV_E5M2;
      const float2 lo = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(raw & 0xFFFFu), kind)));
      const float2 hi = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(raw >> 16), kind)));
      return make_float4(lo.x, lo.y, hi.x, hi.y);
    }
  }
  return make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

__global__ void __launch_bounds__(kThreads)
attention_kernel(const float* __restrict__ q, int64_t heads, const int64_t* __restrict__ slots,
                 const int64_t* __restrict__ positions, PagedKvView cache, int64_t layer, int splits,
                 float* __restrict__ workspace, float* __restrict__ out) {
  extern __shared__ float shared[];
  const int64_t kv_heads = cache.kv_heads, head_dim = cache.head_dim, group = heads / kv_heads;
  const SharedLayout layout(group, head_dim);
  float* query = shared + layout.query;
  float* keys = shared + layout.keys;
  float* values = shared + layout.values;
  float* probabilities = shared + layout.probabilities;
  float* running_max = shared + layout.running_max;
  float* running_sum = shared + layout.running_sum;
  float* correction = shared + layout.correction;

  const int64_t split = blockIdx.x % splits;
  const int64_t kv_head = blockIdx.x / splits % kv_heads;
  const int64_t token = blockIdx.x / splits / kv_heads;
  const int64_t slot = slots[token], length = positions[token] + 1;
  const int64_t span = ((length + splits - 1) / splits + kChunk - 1) / kChunk * kChunk;
  const int64_t begin = split * span, end = min(begin + span, length);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  const float softmax_scale = 1.0f / sqrtf(static_cast<float>(head_dim));
  const float* q_group = q + (token * heads + kv_head * group) * head_dim;  // the group's heads are adjacent
  for (int64_t i = threadIdx.x; i < group * head_dim; i += kThreads) query[i] = q_group[i] * softmax_scale;
  for (int64_t g = threadIdx.x; g < group; g += kThreads) {
    running_max[g] = -INFINITY;
    running_sum[g] = 0.0f;
  }
  float acc[kMaxAccumulators];
#pragma unroll
  for (int j = 0; j < kMaxAccumulators; ++j) acc[j] = 0.0f;
  __syncthreads();

  const int64_t element_bytes = cache.element_bytes();
  for (int64_t chunk = begin; chunk < end; chunk += kChunk) {
    const int valid = static_cast<int>(end - chunk < kChunk ? end - chunk : kChunk);
    // K and V of the chunk into shared memory as float (times the FP8 scale).
    for (int64_t i = threadIdx.x * 4; i < valid * head_dim; i += kThreads * 4) {
      const int p = static_cast<int>(i / head_dim);
      const int64_t d = i % head_dim, position = chunk + p;
      const int32_t block = cache.physical_block(slot, position);
      const int64_t cell = kv_head * kKvBlockPositions + position % kKvBlockPositions;
      float4 kv[2] = {make_float4(0.0f, 0.0f, 0.0f, 0.0f), make_float4(0.0f, 0.0f, 0.0f, 0.0f)};
      if (block >= 0) {  // the host checks that every attended position was written
        const uint8_t* base = cache.layer_base(block, layer);
        kv[0] = load4(base, cell * head_dim + d, cache.storage);
        kv[1] = load4(base + cache.values_bytes(), cell * head_dim + d, cache.storage);
        if (cache.scaled()) {
          const float* scales = reinterpret_cast<const float*>(base + 2 * cache.values_bytes());
          const float k_scale = scales[cell], v_scale = scales[kv_heads * kKvBlockPositions + cell];
          kv[0] = make_float4(kv[0].x * k_scale, kv[0].y * k_scale, kv[0].z * k_scale, kv[0].w * k_scale);
          kv[1] = make_float4(kv[1].x * v_scale, kv[1].y * v_scale, kv[1].z * v_scale, kv[1].w * v_scale);
        }
      }
      float* k_row = keys + p * (head_dim + 1) + d;
      k_row[0] = kv[0].x, k_row[1] = kv[0].y, k_row[2] = kv[0].z, k_row[3] = kv[0].w;
      *reinterpret_cast<float4*>(values + p * head_dim + d) = kv[1];
    }
    __syncthreads();

    // Scores of every (head, position) pair of the chunk; lanes of a warp take consecutive positions.
    for (int64_t pair = threadIdx.x; pair < group * kChunk; pair += kThreads) {
      const int64_t g = pair / kChunk;
      const int p = static_cast<int>(pair % kChunk);
      float score = -INFINITY;
      if (p < valid) {
        const float* qg = query + g * head_dim;
        const float* kp = keys + p * (head_dim + 1);
        float dot = 0.0f;
        for (int64_t d = 0; d < head_dim; ++d) dot = fmaf(qg[d], kp[d], dot);
        score = dot;
      }
      probabilities[pair] = score;
    }
    __syncthreads();

    // Online softmax, one warp per head: lane p owns position p of the chunk.
    for (int64_t g = warp; g < group; g += kWarps) {
      const float score = probabilities[g * kChunk + lane];
      const float previous_max = running_max[g];
      const float new_max = fmaxf(previous_max, warp_max(score));  // finite: valid ≥ 1
      const float p = lane < valid ? expf(score - new_max) : 0.0f;
      const float chunk_sum = warp_sum(p);
      probabilities[g * kChunk + lane] = p;
      if (lane == 0) {
        const float scale_old = expf(previous_max - new_max);  // 0 on the first chunk (−inf)
        correction[g] = scale_old;
        running_sum[g] = running_sum[g] * scale_old + chunk_sum;
        running_max[g] = new_max;
      }
    }
    __syncthreads();

    // acc[(g, d)] = acc · correction[g] + Σ_p probabilities[g][p] · V[p][d]
#pragma unroll
    for (int j = 0; j < kMaxAccumulators; ++j) {
      const int64_t e = threadIdx.x + static_cast<int64_t>(j) * kThreads;
      if (e < group * head_dim) {
        const int64_t g = e / head_dim, d = e % head_dim;
        const float* pg = probabilities + g * kChunk;
        float a = acc[j] * correction[g];
        for (int p = 0; p < valid; ++p) a = fmaf(pg[p], values[p * head_dim + d], a);
        acc[j] = a;
      }
    }
    __syncthreads();  // the next chunk overwrites keys, values and probabilities
  }

#pragma unroll
  for (int j = 0; j < kMaxAccumulators; ++j) {
    const int64_t e = threadIdx.x + static_cast<int64_t>(j) * kThreads;
    if (e < group * head_dim) {
      const int64_t g = e / head_dim, d = e % head_dim;
      const int64_t head = kv_head * group + g;
      if (splits == 1) {
        out[(token * heads + head) * head_dim + d] = acc[j] / running_sum[g];
      } else {
        float* partial = workspace + ((token * heads + head) * splits + split) * (head_dim + 2);
        partial[d] = acc[j];
        if (d == 0) {
          partial[head_dim] = running_max[g];
          partial[head_dim + 1] = running_sum[g];
        }
      }
    }
  }
}

// One block per (token, head): out = Σ_s acc_s · e^(m_s − M) / Σ_s l_s · e^(m_s − M), M = max_s m_s.
// Splits past the token's length hold m = −inf, l = 0 and drop out.
__global__ void attention_combine_kernel(const float* __restrict__ workspace, int64_t head_dim, int splits,
                                         float* __restrict__ out) {
  const float* partials = workspace + static_cast<int64_t>(blockIdx.x) * splits * (head_dim + 2);
  float max_score = -INFINITY;
  for (int s = 0; s < splits; ++s) max_score = fmaxf(max_score, partials[s * (head_dim + 2) + head_dim]);
  float total = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* partial = partials + s * (head_dim + 2);
    if (partial[head_dim + 1] > 0.0f) total += partial[head_dim + 1] * expf(partial[head_dim] - max_score);
  }
  for (int64_t d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* partial = partials + s * (head_dim + 2);
      if (partial[head_dim + 1] > 0.0f) sum += partial[d] * expf(partial[head_dim] - max_score);
    }
    out[static_cast<int64_t>(blockIdx.x) * head_dim + d] = sum / total;
  }
}

}  // namespace

int attention_splits(int64_t tokens, int64_t kv_heads, int64_t longest_sequence, int multiprocessors) {
  constexpr int64_t kMinPositionsPerSplit = 128, kMaxSplits = 64;
  const int64_t blocks = tokens * kv_heads;
  if (longest_sequence <= 2 * kMinPositionsPerSplit || blocks >= 2 * static_cast<int64_t>(multiprocessors)) return 1;
  int64_t splits = (2 * static_cast<int64_t>(multiprocessors) + blocks - 1) / blocks;  // about two blocks per SM
  splits = std::min({splits, (longest_sequence + kMinPositionsPerSplit - 1) / kMinPositionsPerSplit, kMaxSplits});
  return static_cast<int>(std::max<int64_t>(splits, 1));
}

int64_t attention_workspace_floats(int64_t tokens, int64_t heads, int64_t head_dim, int splits) {
  return splits > 1 ? tokens * heads * splits * (head_dim + 2) : 0;
}

void launch_attention(const float* q, int64_t tokens, int64_t heads, const int64_t* slots, const int64_t* positions,
                      const PagedKvView& cache, int64_t layer, int splits, float* workspace, float* out,
                      cudaStream_t s) {
  const int64_t kv_heads = cache.kv_heads, head_dim = cache.head_dim;
  if (kv_heads <= 0 || heads % kv_heads != 0)
    fail("attention: {} query heads are not a multiple of {} kv heads", heads, kv_heads);
  if (head_dim % 4 != 0) fail("attention: head_dim {} is not a multiple of 4", head_dim);
  const int64_t group = heads / kv_heads;
  if (group * head_dim > kMaxGroupDims)
    fail("attention: {} query heads per kv head × head_dim {} exceed the kernel's {} accumulators", group, head_dim,
         kMaxGroupDims);
  if (layer < 0 || layer >= cache.layers) fail("attention: layer {} outside [0, {})", layer, cache.layers);
  if (splits < 1) fail("attention: {} splits", splits);
  if (splits > 1 && !workspace) fail("attention: {} splits need a workspace", splits);
  if (tokens == 0) return;
  const int64_t blocks = tokens * kv_heads * splits;
  if (blocks > 0x7FFFFFFF) fail("attention: {} blocks exceed one launch", blocks);

  const size_t shared_bytes = static_cast<size_t>(SharedLayout(group, head_dim).floats) * sizeof(float);
  static size_t opted_in_bytes = 48 * 1024;  // the default dynamic shared-memory limit
  if (shared_bytes > opted_in_bytes) {
    OCTET_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(shared_bytes)));
    opted_in_bytes = shared_bytes;
  }
  attention_kernel<<<static_cast<unsigned>(blocks), kThreads, shared_bytes, s>>>(q, heads, slots, positions, cache, layer,
                                                                                 splits, workspace, out);
  OCTET_CUDA_LAUNCH_CHECK();
  if (splits > 1) {
    const unsigned threads = static_cast<unsigned>(std::clamp<int64_t>((head_dim + 31) / 32 * 32, 32, 256));
    attention_combine_kernel<<<static_cast<unsigned>(tokens * heads), threads, 0, s>>>(workspace, head_dim, splits,
                                                                                        out);
    OCTET_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace octet::backend::cuda
