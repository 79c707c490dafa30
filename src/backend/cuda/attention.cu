// Causal GQA attention over the cache (flash-decoding) for decode tokens. Bytes: the slot's K and V
// up to the token's position (kv_dim · positions · element size · 2); FLOPs: 4 · head_dim ·
// positions per head: decode is bound by reading the cache. Two kernels (launch_attention picks):
// the grouped one (v2, default) reads each K/V row once for the whole GQA group on BF16 tensor
// cores and merges its splits in the same launch; v1 (OCTET_CUDA_DECODE_ATTENTION=v1, and float32
// caches, head_dim other than 64/128, groups over 8) takes one query head per block on CUDA cores,
// the group's heads sharing rows through L2, and merges splits in a second kernel. Long runs of
// prompt tokens go to the tensor-core kernel of attention_prefill.cu instead (the backend picks, per
// run), which reads each K/V tile once per 64 rows.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/kv_layout.cuh"
#include "backend/cuda/mma_bf16.cuh"

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

// ---- The grouped kernel (v2, the default) ----
// One block per (token, KV head, split of the token's positions): the group's query heads (1–8) are
// the 8 columns of the MMAs, so each cached K and V row is read once for all of them. A warp takes
// tiles of 16 positions (kGroupedTilesInFlight tiles' loads issued before any arithmetic) and computes
//   Sᵀ (16 positions × 8 heads) = K (16 × head_dim) · Qᵀ        A = K rows, B = Q (k = head dims)
//   Oᵀ (head_dim × 8 heads)   += Vᵀ (head_dim × 16) · Pᵀ       A = V columns, B = P (k = positions)
// on BF16 tensor cores: FP8 and BF16 codes are exact in BF16, and q and the probabilities (the latter
// times the V scales) enter as two BF16 parts each (split_bf16_pair), so the products carry 16 bits
// like the float32 kernel's. Only Pᵀ changes lanes between the two steps (through shared memory).
// Index permutations (sums do not depend on the order of k; outputs are stored through the same
// map): lane (g = lane / 4, t = lane % 4) holds the head-dim elements phys(e, t) = (e / E)·4E + t·E
// + e % E of K rows g and g+8 (E = elements per 16 bytes; logical k 4j..4j+3 of chunk j are e =
// 4j..4j+3), so each load instruction reads whole 64-byte runs; in the V step, row (i, g) of m-tile i
// is dim R·g + 2i and row (i, g+8) is dim R·g + 2i + 1 (R = head_dim / 8), so lane g reads R
// contiguous dims of V rows 2t, 2t+1, 2t+8, 2t+9. The last block to finish an item (a per-item
// counter) merges the splits' (max, sum, accumulator) partials and resets the counter.
constexpr int kGroupedWarps = 4;
constexpr int kGroupedThreads = kGroupedWarps * 32;
constexpr int kGroupedTile = 16;          // positions per MMA tile
constexpr int kMaxGroup = 8;              // query heads per KV head: the MMAs' 8 columns
constexpr int64_t kGroupedMinSpan = 64;   // positions per split, at least: partials stay small next to K/V
constexpr int64_t kGroupedTargetBlocks = 2048;  // ~4 resident blocks on each of 132 SMs, a few waves
constexpr int64_t kMaxGridY = 65535;

bool grouped_attention_fits(const KvLayout& layout, int64_t heads) {
  const int64_t group = heads / layout.kv_heads;
  return layout.storage != KvStorage::f32 && (layout.head_dim == 64 || layout.head_dim == 128) && group >= 1 &&
         group <= kMaxGroup && heads % layout.kv_heads == 0;
}

int grouped_attention_splits(int64_t items, int64_t max_context) {
  const int64_t by_length = (max_context + kGroupedMinSpan - 1) / kGroupedMinSpan;
  const int64_t by_occupancy = (kGroupedTargetBlocks + items - 1) / items;
  return static_cast<int>(std::clamp<int64_t>(std::min(by_length, by_occupancy), 1, kMaxGridY));
}

// Positions per split of a token with `count` positions: an even share, a multiple of the tile, at
// least kGroupedMinSpan. ceil(count / span) <= splits splits are used; the others have nothing to do.
__device__ __forceinline__ int64_t grouped_span(int64_t count, int splits) {
  const int64_t share = (count + splits - 1) / splits;
  return max(kGroupedMinSpan, (share + kGroupedTile - 1) / kGroupedTile * kGroupedTile);
}

template <KvStorage S>
__device__ __forceinline__ uint32_t fp8_pair_to_bf16(uint32_t pair) {
  constexpr __nv_fp8_interpretation_t kind = S == KvStorage::e4m3 ? __NV_E4M3 : __NV_E5M2;
  const float2 f = widen_fp8_pair(static_cast<uint16_t>(pair & 0xFFFF), kind);
  return bf16_pair(f.x, f.y);
}

template <int kWords>
__device__ __forceinline__ void load_words(const uint8_t* address, uint32_t* words) {
  if constexpr (kWords == 2) {
    const uint2 v = *reinterpret_cast<const uint2*>(address);
    words[0] = v.x;
    words[1] = v.y;
  } else {
    static_assert(kWords % 4 == 0, "8-byte or 16-byte pieces");
#pragma unroll
    for (int i = 0; i < kWords / 4; ++i) {
      const uint4 v = reinterpret_cast<const uint4*>(address)[i];
      words[4 * i] = v.x;
      words[4 * i + 1] = v.y;
      words[4 * i + 2] = v.z;
      words[4 * i + 3] = v.w;
    }
  }
}

template <KvStorage S, int kHeadDim>
struct GroupedShape {
  static constexpr int kElementBytes = S == KvStorage::bf16 ? 2 : 1;
  static constexpr int kPerPiece = 16 / kElementBytes;                 // E: elements per 16-byte load
  static constexpr int kChunks = kHeadDim / 16;                        // k chunks of S, m-tiles of Oᵀ
  static constexpr int kKPieces = kHeadDim / 4 * kElementBytes / 16;   // 16-byte loads per lane per K row
  static constexpr int kKWords = kKPieces * 4;
  static constexpr int kVDims = kHeadDim / 8;                          // R
  static constexpr int kVWords = kVDims * kElementBytes / 4;
  static constexpr int kTilesInFlight = kElementBytes == 1 ? 2 : 1;    // ~64 registers of loads either way
};

// The A fragment of K rows g (lo) and g+8 (hi) for k chunk j.
template <KvStorage S, int kHeadDim>
__device__ __forceinline__ void key_fragment(const uint32_t* lo, const uint32_t* hi, int j, uint32_t a[4]) {
  if constexpr (S == KvStorage::bf16) {
    a[0] = lo[2 * j];
    a[1] = hi[2 * j];
    a[2] = lo[2 * j + 1];
    a[3] = hi[2 * j + 1];
  } else {
    a[0] = fp8_pair_to_bf16<S>(lo[j]);
    a[1] = fp8_pair_to_bf16<S>(hi[j]);
    a[2] = fp8_pair_to_bf16<S>(lo[j] >> 16);
    a[3] = fp8_pair_to_bf16<S>(hi[j] >> 16);
  }
}

// The A fragment of m-tile i of Vᵀ from the lane's pieces of V rows 2t, 2t+1, 2t+8, 2t+9 (rows[0..3]):
// dims R·g + 2i (a[0], a[2]) and R·g + 2i + 1 (a[1], a[3]), positions paired across rows.
template <KvStorage S>
__device__ __forceinline__ void value_fragment(const uint32_t* r0, const uint32_t* r1, const uint32_t* r8,
                                               const uint32_t* r9, int i, uint32_t a[4]) {
  if constexpr (S == KvStorage::bf16) {
    a[0] = __byte_perm(r0[i], r1[i], 0x5410);
    a[1] = __byte_perm(r0[i], r1[i], 0x7632);
    a[2] = __byte_perm(r8[i], r9[i], 0x5410);
    a[3] = __byte_perm(r8[i], r9[i], 0x7632);
  } else {
    const uint32_t select = i % 2 == 0 ? 0x5140 : 0x7362;  // bytes (x 2i, y 2i, x 2i+1, y 2i+1)
    const uint32_t low = __byte_perm(r0[i / 2], r1[i / 2], select), high = __byte_perm(r8[i / 2], r9[i / 2], select);
    a[0] = fp8_pair_to_bf16<S>(low);
    a[1] = fp8_pair_to_bf16<S>(low >> 16);
    a[2] = fp8_pair_to_bf16<S>(high);
    a[3] = fp8_pair_to_bf16<S>(high >> 16);
  }
}

template <KvStorage S, int kHeadDim>
__global__ void __launch_bounds__(kGroupedThreads)
grouped_attention_kernel(const float* q, int group, const int64_t* slots, const int64_t* positions, KvLayout layout,
                         const void* k_cache, const void* v_cache, const float* k_scales, const float* v_scales,
                         int splits, float* out, float* partial, uint32_t* counters, const int32_t* token_list) {
  using Shape = GroupedShape<S, kHeadDim>;
  constexpr bool kScaled = S != KvStorage::bf16;
  constexpr int kChunks = Shape::kChunks, kTiles = Shape::kTilesInFlight, kBytes = Shape::kElementBytes;
  constexpr int kE = Shape::kPerPiece;
  __shared__ float exchange[kGroupedWarps][kTiles][kGroupedTile][kMaxGroup];  // P·v_scale [position][head]
  __shared__ float warp_max[kGroupedWarps][kMaxGroup], warp_sum[kGroupedWarps][kMaxGroup];
  __shared__ float warp_acc[kGroupedWarps][kMaxGroup][kHeadDim];
  __shared__ bool last_block;

  await_earlier_kernels();
  const int64_t kv_heads = layout.kv_heads, heads = kv_heads * group;
  const int64_t item = blockIdx.x;  // listed token * kv_heads + kv head
  const int64_t kv_head = item % kv_heads, token = token_list ? token_list[item / kv_heads] : item / kv_heads;
  const int split = blockIdx.y;
  const int64_t count = positions[token] + 1;
  const int64_t span = grouped_span(count, splits);
  const int used = static_cast<int>((count + span - 1) / span);
  if (split >= used) return;  // the whole block: no barrier is skipped
  const int64_t begin = split * span, end = min(count, begin + span);
  const int32_t* table = layout.block_table + slots[token] * layout.blocks_per_slot;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t first_q_row = token * heads + kv_head * group;  // of q and out

  // Qᵀ as B fragments: column g is query head g of the group (zero past the group), k chunk j holds
  // dims phys(4j .. 4j+3, t), pre-scaled by 1/sqrt(head_dim), in two BF16 parts.
  uint32_t q_head[kChunks][2], q_tail[kChunks][2];
  {
    const float softmax_scale = rsqrtf(static_cast<float>(kHeadDim));
    const float* q_row = q + (first_q_row + min(g, group - 1)) * kHeadDim;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int e = 4 * j, phys = e / kE * 4 * kE + t * kE + e % kE;
      float4 v = *reinterpret_cast<const float4*>(q_row + phys);
      const float scale = g < group ? softmax_scale : 0.0f;
      split_bf16_pair(v.x * scale, v.y * scale, q_head[j][0], q_tail[j][0]);
      split_bf16_pair(v.z * scale, v.w * scale, q_head[j][1], q_tail[j][1]);
    }
  }

  // Per lane: heads 2t and 2t+1. Running max (the same in every lane of a t), the lane's share of the
  // sum, and Oᵀ: acc[i][h] is (dim R·g + 2i, head 2t+h), acc[i][2+h] (dim R·g + 2i + 1, head 2t+h).
  float running_max[2] = {-INFINITY, -INFINITY}, running_sum[2] = {0.0f, 0.0f};
  float acc[kChunks][4];
#pragma unroll
  for (int i = 0; i < kChunks; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;

  const int64_t tiles = (end - begin + kGroupedTile - 1) / kGroupedTile;
  for (int64_t first = warp; first < tiles; first += kGroupedWarps * kTiles) {
    uint32_t key[kTiles][2][Shape::kKWords], value[kTiles][4][Shape::kVWords];
    float k_scale[kTiles][2], v_scale[kTiles][2];
    bool valid[kTiles][2];
    // Every load of the step first: K rows g, g+8 with their scales, then V rows 2t, 2t+1, 2t+8, 2t+9.
#pragma unroll
    for (int tile = 0; tile < kTiles; ++tile) {
      const int64_t base = begin + (first + tile * kGroupedWarps) * kGroupedTile;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t position = base + g + 8 * half;
        valid[tile][half] = position < end;
        k_scale[tile][half] = v_scale[tile][half] = 1.0f;
#pragma unroll
        for (int w = 0; w < Shape::kKWords; ++w) key[tile][half][w] = 0;
        if (position < end) {
          const int64_t cell = pool_row(layout, table, position) * kv_heads + kv_head;
          const uint8_t* row = static_cast<const uint8_t*>(k_cache) + cell * kHeadDim * kBytes;
#pragma unroll
          for (int piece = 0; piece < Shape::kKPieces; ++piece)
            load_words<4>(row + (piece * 4 * kE + t * kE) * kBytes, &key[tile][half][4 * piece]);
          if constexpr (kScaled) {
            k_scale[tile][half] = k_scales[cell];
            v_scale[tile][half] = v_scales[cell];
          }
        }
      }
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const int64_t position = base + 2 * t + (v & 1) + 8 * (v >> 1);
#pragma unroll
        for (int w = 0; w < Shape::kVWords; ++w) value[tile][v][w] = 0;  // 0 · (P = 0) for masked rows
        if (position < end) {
          const int64_t cell = pool_row(layout, table, position) * kv_heads + kv_head;
          load_words<Shape::kVWords>(static_cast<const uint8_t*>(v_cache) + (cell * kHeadDim + Shape::kVDims * g) * kBytes,
                                     value[tile][v]);
        }
      }
    }
    // Scores: s[tile][0..1] = (position g, heads 2t, 2t+1), s[tile][2..3] = (position g+8, same heads).
    float s[kTiles][4];
    float step_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int tile = 0; tile < kTiles; ++tile) {
      s[tile][0] = s[tile][1] = s[tile][2] = s[tile][3] = 0.0f;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        uint32_t a[4];
        key_fragment<S, kHeadDim>(key[tile][0], key[tile][1], j, a);
        mma_bf16_step(s[tile], a, q_head[j][0], q_head[j][1]);
        mma_bf16_step(s[tile], a, q_tail[j][0], q_tail[j][1]);
      }
#pragma unroll
      for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float& score = s[tile][2 * half + h];
          score = valid[tile][half] ? score * k_scale[tile][half] : -INFINITY;
          step_max[h] = fmaxf(step_max[h], score);
        }
    }
    float reference[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      for (int offset = 4; offset < 32; offset *= 2)
        step_max[h] = fmaxf(step_max[h], __shfl_xor_sync(0xFFFFFFFF, step_max[h], offset));
      const float new_max = fmaxf(running_max[h], step_max[h]);
      reference[h] = new_max == -INFINITY ? 0.0f : new_max;  // no position yet: keep exp finite
      const float correction = __expf(running_max[h] - reference[h]);  // 0 on the first step
      running_max[h] = new_max;
      running_sum[h] *= correction;
#pragma unroll
      for (int i = 0; i < kChunks; ++i) {
        acc[i][h] *= correction;
        acc[i][2 + h] *= correction;
      }
    }
#pragma unroll
    for (int tile = 0; tile < kTiles; ++tile)
#pragma unroll
      for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float p = __expf(s[tile][2 * half + h] - reference[h]);  // 0 for masked positions
          running_sum[h] += p;
          exchange[warp][tile][g + 8 * half][2 * t + h] = p * v_scale[tile][half];
        }
    __syncwarp();
#pragma unroll
    for (int tile = 0; tile < kTiles; ++tile) {
      const float(*p)[kMaxGroup] = exchange[warp][tile];
      uint32_t p_head[2], p_tail[2];  // Pᵀ as B: (positions 2t, 2t+1 | 2t+8, 2t+9; head g)
      split_bf16_pair(p[2 * t][g], p[2 * t + 1][g], p_head[0], p_tail[0]);
      split_bf16_pair(p[2 * t + 8][g], p[2 * t + 9][g], p_head[1], p_tail[1]);
#pragma unroll
      for (int i = 0; i < kChunks; ++i) {
        uint32_t a[4];
        value_fragment<S>(value[tile][0], value[tile][1], value[tile][2], value[tile][3], i, a);
        mma_bf16_step(acc[i], a, p_head[0], p_head[1]);
        mma_bf16_step(acc[i], a, p_tail[0], p_tail[1]);
      }
    }
    __syncwarp();  // the exchange is rewritten by the next step
  }

  // The warps' states into shared memory, then merged per (head, dim).
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    for (int offset = 4; offset < 32; offset *= 2) running_sum[h] += __shfl_xor_sync(0xFFFFFFFF, running_sum[h], offset);
    if (g == 0) {
      warp_max[warp][2 * t + h] = running_max[h];
      warp_sum[warp][2 * t + h] = running_sum[h];
    }
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      warp_acc[warp][2 * t + h][Shape::kVDims * g + 2 * i] = acc[i][h];
      warp_acc[warp][2 * t + h][Shape::kVDims * g + 2 * i + 1] = acc[i][2 + h];
    }
  }
  __syncthreads();
  constexpr int64_t kStride = kHeadDim + 2;  // a partial: max, sum, head_dim accumulators
  float* mine = partial + (item * splits + split) * group * kStride;
  for (int index = threadIdx.x; index < group * kHeadDim; index += kGroupedThreads) {
    const int head = index / kHeadDim, dim = index % kHeadDim;
    float top = -INFINITY;
    for (int w = 0; w < kGroupedWarps; ++w)
      if (warp_sum[w][head] > 0.0f) top = fmaxf(top, warp_max[w][head]);
    float sum = 0.0f, total = 0.0f;
    for (int w = 0; w < kGroupedWarps; ++w)
      if (warp_sum[w][head] > 0.0f) {  // warps without a position of this split count 0
        const float weight = __expf(warp_max[w][head] - top);
        sum += warp_sum[w][head] * weight;
        total += warp_acc[w][head][dim] * weight;
      }
    if (used == 1) {
      out[(first_q_row + head) * kHeadDim + dim] = total / sum;
    } else {
      float* part = mine + head * kStride;
      if (dim == 0) {
        part[0] = top;
        part[1] = sum;
      }
      part[2 + dim] = total;
    }
  }
  if (used == 1) return;

  // Publish this split, count it; the item's last block reads every split (from L2: __ldcg).
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(counters + item, 1u) == static_cast<uint32_t>(used - 1);
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  const float* parts = partial + item * splits * group * kStride;
  for (int index = threadIdx.x; index < group * kHeadDim; index += kGroupedThreads) {
    const int head = index / kHeadDim, dim = index % kHeadDim;
    float top = -INFINITY;
    for (int s = 0; s < used; ++s) top = fmaxf(top, __ldcg(parts + (s * group + head) * kStride));
    float sum = 0.0f, total = 0.0f;
#pragma unroll 4
    for (int s = 0; s < used; ++s) {
      const float* part = parts + (s * group + head) * kStride;
      const float weight = __expf(__ldcg(part) - top);
      sum += __ldcg(part + 1) * weight;
      total += __ldcg(part + 2 + dim) * weight;
    }
    out[(first_q_row + head) * kHeadDim + dim] = total / sum;
  }
  if (threadIdx.x == 0) counters[item] = 0;  // every used block has counted: ready for the next launch (or replay)
}

template <KvStorage S, typename... Args>
void launch_grouped_kernel(int64_t head_dim, dim3 grid, cudaStream_t s, const Args&... args) {
  const LaunchShape shape{grid, dim3(kGroupedThreads)};
  if (head_dim == 128) launch_kernel(grouped_attention_kernel<S, 128>, shape, s, args...);
  else launch_kernel(grouped_attention_kernel<S, 64>, shape, s, args...);
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
    const int splits = grouped_attention_splits(items, max_context);
    const dim3 grid(static_cast<unsigned>(items), static_cast<unsigned>(splits));
    const int group = static_cast<int>(heads / kv_heads);
    switch (layout.storage) {
      case KvStorage::bf16: launch_grouped_kernel<KvStorage::bf16>(head_dim, grid, s, q, group, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, scratch, counters, token_list); break;
      case KvStorage::e4m3: launch_grouped_kernel<KvStorage::e4m3>(head_dim, grid, s, q, group, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, scratch, counters, token_list); break;
      case KvStorage::e5m2: launch_grouped_kernel<KvStorage::e5m2>(head_dim, grid, s, q, group, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, scratch, counters, token_list); break;
      case KvStorage::f32: fail("attention: the grouped kernel takes no float32 cache");  // grouped_attention_fits
    }
    OCTET_CUDA_LAUNCH_CHECK();
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
