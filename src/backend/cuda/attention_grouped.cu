// The grouped decode attention kernel (v2, launch_attention's default for BF16/FP8 caches): one block
// per (token, KV head, split of the token's positions); the group's query heads (1–8) are the 8
// columns of the MMAs, so each cached K and V row is read once for all of them. Each of the block's
// 4 warps (5 in the packed build) streams its own tiles of 16 positions (tiles warp, warp + warps, …) through a ring of
// shared-memory stages filled by cp.async (or, in the TMA builds, by the copy engine: a tile of an FP8 pool
// with blocks of whole tiles is 16 consecutive pool rows, one tensor copy each for K and V), kStages − 1
// tiles in flight while it computes one:
//   Sᵀ (16 positions × 8 heads) = K (16 × head_dim) · Qᵀ        A = K rows, B = Q (k = head dims)
//   Oᵀ (head_dim × 8 heads)   += Vᵀ (head_dim × 16) · Pᵀ       A = V columns, B = P (k = positions)
// FP8 caches run FP16 MMAs (an E4M3/E5M2 pair widens to an exact FP16 pair in one instruction);
// BF16 caches BF16 MMAs. q and the probabilities (times the V scales) enter as two parts each
// (split_f16_pair / split_bf16_pair), so the products carry ~22 (FP16) or 16 (BF16) bits. FP16's
// range is kept by powers of two, exact and undone afterwards: q of each head is scaled so its
// largest |element| lies in [2^13, 2^14) (the scores divided back), and P · v_scale by 2^c, c
// chosen per warp from the largest V scale seen so far so the products stay below 2^10 (c only
// falls; the accumulators are rescaled with the softmax correction, and divided by 2^c at the end).
// Only Pᵀ changes lanes between the two steps (a padded shared-memory exchange).
// Groups of up to 4 heads (Llama-3.1-8B, SmolLM2) over FP8 caches run packed in launches of 16 tokens
// or more (the packed build below): the 8 columns hold the head parts of
// the 4 heads (0–3) and their tail parts (4–7), so each product is one MMA instead of two and a lane
// keeps one part of q; a score is its two columns added (lanes t and t ^ 2), and the accumulators'
// two parts are added once at the end.
// Index permutations (sums do not depend on the order of k; outputs are stored through the same
// map): lane (g = lane / 4, t = lane % 4) holds the head-dim elements phys(e, t) = (e / E)·4E + t·E
// + e % E of K rows g and g+8 (E = elements per 16 bytes; logical k 4j..4j+3 of chunk j are e =
// 4j..4j+3), so each lane reads whole 16-byte pieces; in the V step, row (i, g) of m-tile i is dim
// R·g + 2i and row (i, g+8) is dim R·g + 2i + 1 (R = head_dim / 8), so lane g reads R contiguous
// dims of V rows 2t, 2t+1, 2t+8, 2t+9. The stages' 16-byte pieces are XOR-swizzled per row so both
// read patterns are free of bank conflicts (FP8, head_dim 128). The last block to finish an item (a
// per-item counter) merges the splits' (max, sum, accumulator) partials and resets the counter:
// split weights first, a warp per head, then every output with all its splits' loads in flight.
#include "backend/cuda/attention_grouped.cuh"
#include "backend/cuda/async_copy.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/integer_setting.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/kv_layout.cuh"
#include "backend/cuda/mma_bf16.cuh"
#include "backend/cuda/tensor_map.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace octet::backend::cuda {
namespace {

// A build of the kernel: warps a block, packed columns (groups of up to 4 heads), and whether the copy
// engine (TMA) brings the K/V tiles. Its registers are capped for the resident blocks a SM its shared
// memory allows (GroupedShape::kBlocksPerSm).
template <int W, bool P, bool T = false>
struct Variant {
  static constexpr int kWarps = W;
  static constexpr int kThreads = W * 32;
  static constexpr bool kPacked = P;
  static constexpr bool kTma = T;
};
using Plain = Variant<4, false>;
// Packed, the q fragments' 16 registers fewer leave room for a fifth warp a block at 4 blocks a SM
// (96 registers, no spill at FP8 head_dim 128; FP8 caches only). Llama-3.1-8B on the H200 (docs/PERFORMANCE.md
// version 15), ms a step: b64 5.017–5.054 against 5.085–5.100 plain, 5.084–5.094 packed at 4 warps and 5.119
// packed at 4 warps with 3 stages; b128 7.03–7.06 against 7.14; b8–b32 within the spread; b1 2.884–2.889
// against 2.869–2.873 plain, hence packed only from kPackedTokens tokens on.
using Packed = Variant<5, true>;
// The same two with the K/V tiles copied by the copy engine (FP8 caches at head_dim 128 on sm_90, pool
// blocks of a multiple of 16 positions; see grouped_attention_tma): a tile is 16 consecutive pool rows of one KV
// head, one tensor copy for K and one for V a tile, where each lane otherwise computes eight 16-byte
// copies' addresses (about 80 of a tile's ~620 instructions at 8B b64).
using PlainTma = Variant<4, false, true>;
using PackedTma = Variant<5, true, true>;
constexpr int64_t kPackedTokens = 16;
// From 16 tokens on the TMA builds: Llama-3.1-8B b16 / b64 / b128 3.796 / 4.887 / 6.695–6.754 ms a step
// against 3.862 / 5.114 / 7.158 with cp.async tiles; below, within the spread (b1 2.869 against 2.866,
// b8 3.476 against 3.487: a split's warp has one or two tiles there), H200, docs/PERFORMANCE.md version 16.
constexpr int64_t kTmaTokens = 16;
constexpr int kTile = 16;                  // positions per MMA tile
constexpr int kMaxGroup = 8;               // query heads per KV head: the MMAs' 8 columns
constexpr int64_t kMinSpan = 64;           // positions per split, at least: a tile per warp
// Blocks the splits aim for (or the switch below): one wave of 4 resident blocks on 132 SMs. Fewer,
// longer splits won on the H200 (8B b8 / b64 step: 3.698 / 5.259 ms at 512 against 4.187 / 5.667 at
// 2048): a warp's start and end (table, first tile; merge, fence, counter) weigh less.
constexpr int64_t kTargetBlocks = 512;
constexpr int kMaxSplits = 512;            // the merge's per-split weights fit the stages' memory
constexpr int kExchangeStride = 20;        // floats per head row of the P exchange: stores conflict-free
constexpr int kQTopExponent = 14;          // q scaled into [2^13, 2^14)
constexpr int kPTopExponent = 10;          // P · v_scale scaled below 2^10
constexpr int kMaxExponent = 100;          // scaling exponents stay within ±100: 2^e a normal float
constexpr unsigned kAll = 0xFFFFFFFFu;

template <KvStorage S, int kHeadDim, class V>
struct GroupedShape {
  static constexpr int kWarps = V::kWarps;
  static constexpr bool kTma = V::kTma;
  static constexpr bool kFp8 = S != KvStorage::bf16;  // FP16 MMAs and per-cell scales
  static constexpr int kElementBytes = kFp8 ? 1 : 2;
  static constexpr int kChunks = kHeadDim / 16;                 // k chunks of S, m-tiles of Oᵀ
  static constexpr int kRowBytes = kHeadDim * kElementBytes;
  static constexpr int kRowPieces = kRowBytes / 16;             // 16-byte pieces of a row: 4, 8 or 16
  static constexpr int kKPieces = kRowPieces / 4;               // of them per lane per K row
  static constexpr int kVDims = kHeadDim / 8;                   // R
  static constexpr int kVBytes = kVDims * kElementBytes;        // per lane per V row: 8, 16 or 32
  static constexpr int kVWords = kVBytes / 4;
  // FP8 at head_dim 128: 2 stages measured 1.4% faster than 3 at 8B b64 / b128 and 0.6% at 70B b64 (same 4 blocks a
  // SM, docs/PERFORMANCE.md version 12); more blocks a SM with 2 stages spill registers and lose 15–30%.
  static constexpr int kStages = kFp8 ? (kHeadDim == 128 ? 2 : 4) : 2;
  static constexpr int kTileBytes = kTile * kRowBytes;
  static constexpr int kScaleBytes = 2 * kTile * 4;  // k scales, v scales of a tile
  // A stage: K, V and (cp.async build) their scales; the TMA build keeps its scales apart, so that
  // each tile starts on a 1024-byte boundary (the 128-byte swizzle's period).
  static constexpr int kStageBytes = 2 * kTileBytes + (kTma ? 0 : kScaleBytes);
  static constexpr int kWarpBytes = kStages * kStageBytes;
  static constexpr int kStagesBytes = kWarps * kWarpBytes;
  // The cp.async build's stages are dynamic shared memory; the TMA build's are static (see the kernel).
  static constexpr int kDynamicBytes = kTma ? 0 : kStagesBytes;
  static_assert(!kTma || (kFp8 && kHeadDim == 128), "TMA tiles: FP8 rows of 128 bytes");
  // Resident blocks a SM the registers are capped for (128 a thread at 4): what the shared memory allows.
  static constexpr int kBlocksPerSm = kStagesBytes + (kTma ? kWarps * kStages * kScaleBytes : 0) > 56 * 1024 ? 3 : 4;
  static constexpr int kCopiesPerLane = kTile * kRowPieces / 32;  // 16-byte copies per K (or V) tile
  static constexpr int kAccStride = kHeadDim + 2;                 // floats per head of a warp's Oᵀ
  static_assert(kMaxGroup * kAccStride * 4 <= kWarpBytes, "a warp's Oᵀ fits its stages");
  static_assert(2 * kMaxSplits * kMaxGroup * 4 <= kStagesBytes, "the merge's weights fit the stages");
  static_assert(kWarpBytes % 16 == 0, "stages 16-byte aligned");
};

// 16 bytes global → shared, bypassing L1; valid == false writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void copy16_async(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void copy4_async(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0) : "memory");
}
__device__ __forceinline__ void commit_copies() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// "memory": no shared-memory read of a stage moves above the wait for its copies.
template <int Pending>
__device__ __forceinline__ void wait_copies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

// Byte offset of 16-byte piece `piece` of tile row `row`: pieces are XOR-swizzled within groups of 8
// so that rows g, g+1 (the K reads) land in different halves of the banks and rows 2t + c (the V
// reads) in different quarters. TMA tiles are as the copy engine's 128-byte swizzle writes them
// (piece ^ row % 8); their K reads take rows key_row(g) instead (see the kernel), for the same effect.
template <class Shape>
__device__ __forceinline__ int piece_offset(int row, int piece) {
  if constexpr (Shape::kTma) return row * Shape::kRowBytes + ((piece ^ (row & 7)) << 4);
  const int swizzle = (((row >> 1) & 3) << 1) ^ ((row & 1) << 2);
  return row * Shape::kRowBytes + (piece ^ (swizzle & (Shape::kRowPieces - 1) & 7)) * 16;
}

// 2^e for |e| <= 126, exactly.
__device__ __forceinline__ float power_of_two(int e) { return __int_as_float((e + 127) << 23); }
// e with x < 2^e <= 2x for x > 0 (x < 2^-126 gives -126).
__device__ __forceinline__ int exponent_above(float x) {
  return static_cast<int>((__float_as_uint(x) >> 23) & 0xFF) - 126;
}

template <KvStorage S>
__device__ __forceinline__ uint32_t fp8_pair_to_f16(uint32_t pair) {
  constexpr __nv_fp8_interpretation_t kind = S == KvStorage::e4m3 ? __NV_E4M3 : __NV_E5M2;
  const __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair & 0xFFFF), kind);
  uint32_t bits;
  memcpy(&bits, &raw, sizeof(bits));
  return bits;
}

template <KvStorage S>
__device__ __forceinline__ void mma_step(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  if constexpr (S == KvStorage::bf16) mma_bf16_step(c, a, b0, b1);
  else mma_f16_step(c, a, b0, b1);
}
template <KvStorage S>
__device__ __forceinline__ void split_pair(float low, float high, uint32_t& head, uint32_t& tail) {
  if constexpr (S == KvStorage::bf16) split_bf16_pair(low, high, head, tail);
  else split_f16_pair(low, high, head, tail);
}

// The A fragment of K rows g (lo) and g+8 (hi) for k chunk j.
template <KvStorage S>
__device__ __forceinline__ void key_fragment(const uint32_t* lo, const uint32_t* hi, int j, uint32_t a[4]) {
  if constexpr (S == KvStorage::bf16) {
    a[0] = lo[2 * j];
    a[1] = hi[2 * j];
    a[2] = lo[2 * j + 1];
    a[3] = hi[2 * j + 1];
  } else {
    a[0] = fp8_pair_to_f16<S>(lo[j]);
    a[1] = fp8_pair_to_f16<S>(hi[j]);
    a[2] = fp8_pair_to_f16<S>(lo[j] >> 16);
    a[3] = fp8_pair_to_f16<S>(hi[j] >> 16);
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
    a[0] = fp8_pair_to_f16<S>(low);
    a[1] = fp8_pair_to_f16<S>(low >> 16);
    a[2] = fp8_pair_to_f16<S>(high);
    a[3] = fp8_pair_to_f16<S>(high >> 16);
  }
}

// `words` 32-bit words (2, 4 or 8) of a stage row from byte `offset` on (a multiple of their size).
template <class Shape, int kWords>
__device__ __forceinline__ void read_row(const uint8_t* tile, int row, int offset, uint32_t* words) {
  if constexpr (kWords == 2) {
    const uint2 v = *reinterpret_cast<const uint2*>(tile + piece_offset<Shape>(row, offset / 16) + offset % 16);
    words[0] = v.x;
    words[1] = v.y;
  } else {
#pragma unroll
    for (int p = 0; p < kWords / 4; ++p) {
      const uint4 v = *reinterpret_cast<const uint4*>(tile + piece_offset<Shape>(row, offset / 16 + p));
      words[4 * p] = v.x;
      words[4 * p + 1] = v.y;
      words[4 * p + 2] = v.z;
      words[4 * p + 3] = v.w;
    }
  }
}

// Positions per split of a token with `count` positions: an even share, a multiple of the tile, at
// least kMinSpan. ceil(count / span) <= splits splits are used; the others have nothing to do.
__device__ __forceinline__ int64_t grouped_span(int64_t count, int splits) {
  const int64_t share = (count + splits - 1) / splits;
  return max(kMinSpan, (share + kTile - 1) / kTile * kTile);
}

template <KvStorage S, int kHeadDim, class V>
__global__ void __launch_bounds__(V::kThreads, (GroupedShape<S, kHeadDim, V>::kBlocksPerSm))
grouped_attention_kernel(const float* q, int group, const int64_t* slots, const int64_t* positions, KvLayout layout,
                         const void* k_cache, const void* v_cache, const float* k_scales, const float* v_scales,
                         int splits, float* out, float* partial, uint32_t* counters, const int32_t* token_list,
                         const __grid_constant__ CUtensorMap k_map, const __grid_constant__ CUtensorMap v_map) {
  using Shape = GroupedShape<S, kHeadDim, V>;
  constexpr int kWarps = V::kWarps, kThreads = V::kThreads;
  constexpr bool kPacked = V::kPacked, kTma = V::kTma;
  constexpr bool kFp8 = Shape::kFp8;
  constexpr int kChunks = Shape::kChunks, kStages = Shape::kStages;
  // The stages [warp][stage]; later the warps' Oᵀ, then the merge's weights. The TMA build's are static,
  // 1024-byte aligned (the 128-byte swizzle's period), so that every shared address is a constant, with
  // their scales [warp][stage][k, v][row] beside them.
  extern __shared__ __align__(16) uint8_t dynamic_shared[];
  uint8_t* stages = dynamic_shared;
  float* tma_scales = nullptr;
  if constexpr (kTma) {
    __shared__ __align__(1024) uint8_t static_stages[Shape::kStagesBytes];
    __shared__ __align__(16) float static_scales[kWarps * kStages * Shape::kScaleBytes / 4];
    stages = static_stages;
    tma_scales = static_scales;
  }
  __shared__ unsigned long long tile_landed[kTma ? kWarps : 1][kStages];  // TMA: a warp's stage's copies
  // P·v_scale [head][position]; packed, only heads 0–3 (what keeps the TMA build within 48 KiB of static memory).
  __shared__ __align__(16) float exchange[kWarps][kPacked ? 4 : kMaxGroup][kExchangeStride];
  __shared__ float warp_max[kWarps][kMaxGroup], warp_sum[kWarps][kMaxGroup];  // warp_max: later the warps' weights
  __shared__ float head_total[kMaxGroup];  // the block's softmax sum per head, later the item's
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
  // The tile positions of MMA rows g and g + 8 (the score rows). TMA tiles pair g with position
  // g/2 + 4·(g%2): the K reads of rows 2p, 2p+1 (one quarter-warp) then hit swizzle rows p, p + 4, whose
  // pieces lie in different halves of the banks. The sums do not depend on the rows' order.
  const int key_row = kTma ? (g >> 1) + 4 * (g & 1) : g;
  // The head of the lane's B column g, and the heads h = 0, 1 of its score and accumulator columns
  // 2t + h; packed, columns 4–7 are the tails of heads 0–3 and lanes t, t ^ 2 hold the same heads.
  const int column_head = kPacked ? g & 3 : g;
  const bool tail_column = kPacked && g >= 4;
  const int first_head = kPacked ? 2 * (t & 1) : 2 * t;
  const bool owns_heads = !kPacked || t < 2;  // the lane whose columns' results are stored

  // Qᵀ as B fragments: column g is query head g of the group (zero past the group), k chunk j holds
  // dims phys(4j .. 4j+3, t), pre-scaled by 1/sqrt(head_dim) (and for FP16 by 2^q_exponent of the
  // head), in two parts. score_unscale: 2^-q_exponent of the lane's score columns, heads 2t, 2t+1.
  // Packed: q_head holds the lane's one part (head or tail of column_head), q_tail is unused.
  uint32_t q_head[kChunks][2], q_tail[kChunks][2];
  float score_unscale[2] = {1.0f, 1.0f};
  {
    const float scale = column_head < group ? rsqrtf(static_cast<float>(kHeadDim)) : 0.0f;
    const float* q_row = q + (first_q_row + min(column_head, group - 1)) * kHeadDim;
    constexpr int kE = 16 / Shape::kElementBytes;
    float4 v[kChunks];
    float top = 0.0f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int e = 4 * j, phys = e / kE * 4 * kE + t * kE + e % kE;
      v[j] = *reinterpret_cast<const float4*>(q_row + phys);
      v[j].x *= scale;
      v[j].y *= scale;
      v[j].z *= scale;
      v[j].w *= scale;
      top = fmaxf(top, fmaxf(fmaxf(fabsf(v[j].x), fabsf(v[j].y)), fmaxf(fabsf(v[j].z), fabsf(v[j].w))));
    }
    float q_scale = 1.0f;
    if constexpr (kFp8) {
      top = fmaxf(top, __shfl_xor_sync(kAll, top, 1));
      top = fmaxf(top, __shfl_xor_sync(kAll, top, 2));  // the head's largest |element|
      const int exponent = top > 0.0f ? max(-kMaxExponent, min(kMaxExponent, kQTopExponent - exponent_above(top))) : 0;
      q_scale = power_of_two(exponent);
      score_unscale[0] = power_of_two(-__shfl_sync(kAll, exponent, 4 * first_head));      // g = first_head
      score_unscale[1] = power_of_two(-__shfl_sync(kAll, exponent, 4 * first_head + 4));  // first_head + 1
    }
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      split_pair<S>(v[j].x * q_scale, v[j].y * q_scale, q_head[j][0], q_tail[j][0]);
      split_pair<S>(v[j].z * q_scale, v[j].w * q_scale, q_head[j][1], q_tail[j][1]);
      if (tail_column) {
        q_head[j][0] = q_tail[j][0];
        q_head[j][1] = q_tail[j][1];
      }
    }
  }

  // The warp's tiles k = 0 .. my_tiles-1 are tiles warp + kWarps·k of the split; tile k is in stage k % kStages.
  const int64_t tiles = (end - begin + kTile - 1) / kTile;
  const int my_tiles = tiles > warp ? static_cast<int>((tiles - warp + kWarps - 1) / kWarps) : 0;
  uint8_t* const warp_stages = stages + warp * Shape::kWarpBytes;
  const uint32_t warp_stages_address = shared_address(warp_stages);
  if constexpr (kTma) {
    if (lane == 0) {
      for (int stage = 0; stage < kStages; ++stage) mbarrier_init(&tile_landed[warp][stage], 1);
      mbarrier_init_fence();
    }
    __syncwarp();
  }
  // Position lane % 16 of the warp's tile k and its pool block (position -1: past the split or the
  // tiles), then its pool row (-1 for those). Two steps: the loop looks a tile's blocks up a whole tile
  // before it needs their rows, so the table load's latency hides behind that tile's arithmetic — with
  // the row computed at once, every tile waited for it (at 8B b64, 28% of the kernel's stall samples).
  // TMA: every lane looks up the tile's first position (a tile is one run of pool rows).
  auto look_up = [&](int k) -> int2 {
    const int64_t position = begin + static_cast<int64_t>(warp + k * kWarps) * kTile + (kTma ? 0 : lane % kTile);
    if (k < my_tiles && position < end) return make_int2(pool_block(layout, table, position), static_cast<int>(position));
    return make_int2(0, -1);
  };
  auto pool_row_of = [&](int2 looked_up) -> int {
    return looked_up.y >= 0 ? static_cast<int>(pool_row_in(layout, looked_up.x, looked_up.y)) : -1;
  };
  // Tile k's K and V rows (zeros past the end) and their scales into its stage; one commit group per k.
  // TMA: lane 0 has the copy engine bring the tile's 16 pool rows of K and V (a tile never spans two
  // pool blocks; `row_of_lane` is the tile's first pool row), lanes 0–31 copy the 32 scales; V rows
  // past the end are zeroed after they land.
  auto fetch = [&](int k, int row_of_lane) {
    if constexpr (kTma) {
      if (k < my_tiles && lane == 0) {
        const uint32_t stage = warp_stages_address + (k % kStages) * Shape::kStageBytes;
        unsigned long long* const landed = &tile_landed[warp][k % kStages];
        const int head = static_cast<int>(kv_head);
        mbarrier_expect_bytes(landed, 2 * Shape::kTileBytes);
        tensor_copy_3d(stage, &k_map, 0, head, row_of_lane, landed);
        tensor_copy_3d(stage + Shape::kTileBytes, &v_map, 0, head, row_of_lane, landed);
      }
      if (k < my_tiles) {  // lanes 0–15 the k scales of rows 0–15, lanes 16–31 the v scales
        const int64_t cell = (static_cast<int64_t>(row_of_lane) + lane % kTile) * kv_heads + kv_head;
        copy4_async(shared_address(tma_scales + (warp * kStages + k % kStages) * Shape::kScaleBytes / 4) + lane * 4,
                    (lane < kTile ? k_scales : v_scales) + cell, true);  // past the end: masked
      }
      commit_copies();
      return;
    }
    if (k < my_tiles) {
      const uint32_t stage = warp_stages_address + (k % kStages) * Shape::kStageBytes;
#pragma unroll
      for (int c = 0; c < Shape::kCopiesPerLane; ++c) {
        const int index = lane + 32 * c, row = index / Shape::kRowPieces, piece = index % Shape::kRowPieces;
        const int pool = __shfl_sync(kAll, row_of_lane, row);
        const int64_t at = (static_cast<int64_t>(max(pool, 0)) * kv_heads + kv_head) * Shape::kRowBytes + piece * 16;
        const uint32_t to = stage + piece_offset<Shape>(row, piece);
        copy16_async(to, static_cast<const uint8_t*>(k_cache) + at, pool >= 0);
        copy16_async(to + Shape::kTileBytes, static_cast<const uint8_t*>(v_cache) + at, pool >= 0);
      }
      if constexpr (kFp8) {  // lanes 0–15 the k scales of positions 0–15, lanes 16–31 the v scales
        const int64_t cell = static_cast<int64_t>(max(row_of_lane, 0)) * kv_heads + kv_head;
        copy4_async(stage + 2 * Shape::kTileBytes + lane * 4, (lane < kTile ? k_scales : v_scales) + cell,
                    row_of_lane >= 0);
      }
    }
    commit_copies();
  };

  // Per lane: heads first_head + h (h = 0, 1). Running max (the same in every lane of a t), the lane's
  // share of the sum, and Oᵀ·2^v_exponent: acc[i][h] is (dim R·g + 2i, column 2t+h), acc[i][2+h] (dim
  // R·g + 2i + 1); packed, the columns of t ≥ 2 are the tail parts.
  float running_max[2] = {-INFINITY, -INFINITY}, running_sum[2] = {0.0f, 0.0f};
  float acc[kChunks][4];
#pragma unroll
  for (int i = 0; i < kChunks; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;
  int v_exponent = kMaxExponent;

  {
    int2 ahead[kStages - 1];
#pragma unroll
    for (int k = 0; k < kStages - 1; ++k) ahead[k] = look_up(k);  // all the table loads at once
#pragma unroll
    for (int k = 0; k < kStages - 1; ++k) fetch(k, pool_row_of(ahead[k]));
  }
  int2 next = look_up(kStages - 1);
  float(*const p_exchange)[kExchangeStride] = exchange[warp];
  for (int k = 0; k < my_tiles; ++k) {
    fetch(k + kStages - 1, pool_row_of(next));
    next = look_up(k + kStages);  // its table load is waited on only at the next tile
    if constexpr (kTma) mbarrier_wait(&tile_landed[warp][k % kStages], (k / kStages) & 1);  // tile k is in
    wait_copies<kStages - 1>();
    __syncwarp();
    uint8_t* const key = warp_stages + (k % kStages) * Shape::kStageBytes;
    uint8_t* const value = key + Shape::kTileBytes;
    // The tile's k scales, then its v scales.
    const float* const scale = kTma ? tma_scales + (warp * kStages + k % kStages) * Shape::kScaleBytes / 4
                                    : reinterpret_cast<const float*>(value + Shape::kTileBytes);
    const int64_t base = begin + static_cast<int64_t>(warp + k * kWarps) * kTile;
    if constexpr (kTma) {
      // The split's last tile: its V rows past the end hold whatever the pool block held, and their
      // probabilities are 0, but 0 · NaN is not. K rows need nothing: their scores are masked by select.
      const int valid = static_cast<int>(min(static_cast<int64_t>(kTile), end - base));
      if (valid < kTile) {
        for (int index = valid * Shape::kRowPieces + lane; index < kTile * Shape::kRowPieces; index += 32)
          *reinterpret_cast<uint4*>(value + index * 16) = make_uint4(0, 0, 0, 0);  // whole rows: swizzle-free
        __syncwarp();
      }
    }

    // Scores: s[0..1] = (position g, heads first_head + 0, 1), s[2..3] = (position g+8, same heads).
    // q's head and tail parts accumulate apart: two chains of dependent MMAs, half as long (packed:
    // in the two halves of one MMA's columns).
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f}, s_tail[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    constexpr int kChunksPerPiece = kChunks / Shape::kKPieces;  // 4 (FP8) or 2 (BF16)
#pragma unroll
    for (int piece = 0; piece < Shape::kKPieces; ++piece) {
      uint32_t key_lo[4], key_hi[4];  // this piece of K rows g and g+8
      read_row<Shape, 4>(key, key_row, (piece * 4 + t) * 16, key_lo);
      read_row<Shape, 4>(key, key_row + 8, (piece * 4 + t) * 16, key_hi);
#pragma unroll
      for (int c = 0; c < kChunksPerPiece; ++c) {
        const int j = piece * kChunksPerPiece + c;
        uint32_t a[4];
        key_fragment<S>(key_lo, key_hi, c, a);
        mma_step<S>(s, a, q_head[j][0], q_head[j][1]);
        if constexpr (!kPacked) mma_step<S>(s_tail, a, q_tail[j][0], q_tail[j][1]);
      }
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) s[e] += kPacked ? __shfl_xor_sync(kAll, s[e], 2) : s_tail[e];
    const bool in_split[2] = {base + key_row < end, base + key_row + 8 < end};  // the score rows' positions
    float k_scale[2] = {1.0f, 1.0f}, v_scale[2] = {1.0f, 1.0f};
    if constexpr (kFp8) {
      k_scale[0] = scale[key_row];
      k_scale[1] = scale[key_row + 8];
      v_scale[0] = scale[kTile + key_row];
      v_scale[1] = scale[kTile + key_row + 8];
      if constexpr (kTma) {  // past the end the scales are the pool block's old ones (copies zero-fill them)
        v_scale[0] = in_split[0] ? v_scale[0] : 0.0f;
        v_scale[1] = in_split[1] ? v_scale[1] : 0.0f;
      }
    }
    float step_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float& score = s[2 * half + h];
        score = in_split[half] ? score * (k_scale[half] * score_unscale[h]) : -INFINITY;
        step_max[h] = fmaxf(step_max[h], score);
      }
    // The V scale exponent: lowered (never raised) so that this tile's P · v_scale · 2^v_exponent < 2^10.
    float acc_factor = 1.0f, p_scale = 1.0f;
    if constexpr (kFp8) {
      float v_top = fmaxf(v_scale[0], v_scale[1]);  // 0 for positions past the end
      for (int offset = 4; offset < 32; offset *= 2) v_top = fmaxf(v_top, __shfl_xor_sync(kAll, v_top, offset));
      if (v_top > 0.0f) {
        const int want = max(-kMaxExponent, min(kMaxExponent, kPTopExponent - exponent_above(v_top)));
        if (want < v_exponent) {
          acc_factor = exp2f(static_cast<float>(want - v_exponent));  // 0 when nothing was added yet
          v_exponent = want;
        }
      }
      p_scale = power_of_two(v_exponent);
    }
    // The max reduced every tile: a lazy reference (raised only past a slack, most tiles skipping this and the
    // correction) ran 9% fewer instructions and 6% slower at 8B b64, and spilled (docs/PERFORMANCE.md version 18).
    float reference[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      for (int offset = 4; offset < 32; offset *= 2)
        step_max[h] = fmaxf(step_max[h], __shfl_xor_sync(kAll, step_max[h], offset));
      const float new_max = fmaxf(running_max[h], step_max[h]);
      reference[h] = new_max == -INFINITY ? 0.0f : new_max;  // no position yet: keep exp finite
      const float correction = __expf(running_max[h] - reference[h]);  // 0 on the first tile
      running_max[h] = new_max;
      running_sum[h] *= correction;
      const float acc_correction = correction * acc_factor;
#pragma unroll
      for (int i = 0; i < kChunks; ++i) {
        acc[i][h] *= acc_correction;
        acc[i][2 + h] *= acc_correction;
      }
    }
#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float p = __expf(s[2 * half + h] - reference[h]);  // 0 for masked positions
        running_sum[h] += p;
        p_exchange[first_head + h][key_row + 8 * half] = kFp8 ? p * (v_scale[half] * p_scale) : p;
      }
    __syncwarp();
    uint32_t p_head[2], p_tail[2];  // Pᵀ as B: (positions 2t, 2t+1 | 2t+8, 2t+9; head column_head)
    {
      const float2 low = *reinterpret_cast<const float2*>(&p_exchange[column_head][2 * t]);
      const float2 high = *reinterpret_cast<const float2*>(&p_exchange[column_head][2 * t + 8]);
      split_pair<S>(low.x, low.y, p_head[0], p_tail[0]);
      split_pair<S>(high.x, high.y, p_head[1], p_tail[1]);
      if (tail_column) {  // packed: the lane's column is the tail part
        p_head[0] = p_tail[0];
        p_head[1] = p_tail[1];
      }
    }
    // The lane's R dims of V rows 2t, 2t+1, 2t+8, 2t+9 (zeros past the end), 16 bytes (or 8) at a time.
    constexpr int kVPieces = Shape::kVBytes > 16 ? Shape::kVBytes / 16 : 1;
    constexpr int kPieceWords = Shape::kVWords / kVPieces, kTilesPerPiece = kChunks / kVPieces;
#pragma unroll
    for (int piece = 0; piece < kVPieces; ++piece) {
      uint32_t rows[4][kPieceWords];
#pragma unroll
      for (int r = 0; r < 4; ++r)
        read_row<Shape, kPieceWords>(value, 2 * t + (r & 1) + 8 * (r >> 1), Shape::kVBytes * g + 16 * piece, rows[r]);
#pragma unroll
      for (int c = 0; c < kTilesPerPiece; ++c) {
        const int i = piece * kTilesPerPiece + c;
        uint32_t a[4];
        value_fragment<S>(rows[0], rows[1], rows[2], rows[3], c, a);
        mma_step<S>(acc[i], a, p_head[0], p_head[1]);
        if constexpr (!kPacked) mma_step<S>(acc[i], a, p_tail[0], p_tail[1]);
      }
    }
    __syncwarp();  // the stage and the exchange are rewritten by the next tiles
  }
  wait_copies<0>();  // (only empty groups are left; the stages become the warp's Oᵀ)
  __syncwarp();

  // The warps' states into shared memory, then merged per (head, dim).
  float* const my_acc = reinterpret_cast<float*>(warp_stages);  // [head][kAccStride]
  const float acc_unscale = kFp8 ? power_of_two(-v_exponent) : 1.0f;
  if constexpr (kPacked) {  // the head parts (t < 2) and the tail parts (t ^ 2) added
#pragma unroll
    for (int i = 0; i < kChunks; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][e] += __shfl_xor_sync(kAll, acc[i][e], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    // Lane g's share holds positions key_row(g) (and + 8). TMA: adding over g ^ 2, g ^ 4, then g ^ 1 sums
    // the positions in the tree the plain order (g ^ 1, g ^ 2, g ^ 4) builds over positions g: the same bits.
#pragma unroll
    for (int step = 0; step < 3; ++step) {
      const int offset = kTma ? (step < 2 ? 8 << step : 4) : 4 << step;
      running_sum[h] += __shfl_xor_sync(kAll, running_sum[h], offset);
    }
    if (g == 0 && owns_heads) {
      warp_max[warp][first_head + h] = running_max[h];
      warp_sum[warp][first_head + h] = running_sum[h];
    }
    if (owns_heads) {
#pragma unroll
      for (int i = 0; i < kChunks; ++i)
        *reinterpret_cast<float2*>(my_acc + (first_head + h) * Shape::kAccStride + Shape::kVDims * g + 2 * i) =
            make_float2(acc[i][h] * acc_unscale, acc[i][2 + h] * acc_unscale);
    }
  }
  __syncthreads();
  // The launch's partials: accumulators [item][split][head][head_dim], then (max, sum) [item][split][head].
  const int64_t partials = static_cast<int64_t>(gridDim.x) * splits * group;
  float* const accumulators = partial;
  float2* const stats = reinterpret_cast<float2*>(partial + partials * kHeadDim);
  const int64_t mine = (item * splits + split) * group;  // this split's first (item, split, head)
  if (threadIdx.x < group) {  // per head: the warps' weights, once
    const int head = threadIdx.x;
    float top = -INFINITY;
    for (int w = 0; w < kWarps; ++w)
      if (warp_sum[w][head] > 0.0f) top = fmaxf(top, warp_max[w][head]);
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      const float weight = warp_sum[w][head] > 0.0f ? __expf(warp_max[w][head] - top) : 0.0f;  // no position: 0
      sum += warp_sum[w][head] * weight;
      warp_max[w][head] = weight;
    }
    if (used > 1 && head < group) stats[mine + head] = make_float2(top, sum);
    head_total[head] = sum;
  }
  __syncthreads();
  for (int index = threadIdx.x; index < group * kHeadDim; index += kThreads) {
    const int head = index / kHeadDim, dim = index % kHeadDim;
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w)
      total += reinterpret_cast<const float*>(stages + w * Shape::kWarpBytes)[head * Shape::kAccStride + dim] * warp_max[w][head];
    if (used == 1) out[(first_q_row + head) * kHeadDim + dim] = total / head_total[head];
    else accumulators[mine * kHeadDim + index] = total;
  }
  if (used == 1) return;

  // Publish this split, count it; the item's last block reads every split (from L2: __ldcg).
  __threadfence();
  __syncthreads();  // also: every warp is done with the stages, which now hold the merge's weights
  if (threadIdx.x == 0) last_block = atomicAdd(counters + item, 1u) == static_cast<uint32_t>(used - 1);
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  const int64_t first = item * splits * group;  // the item's first (split, head)
  float* const split_weight = reinterpret_cast<float*>(stages);  // [split][head]: first the splits' maxima
  float* const split_sum = split_weight + used * group;
  for (int index = threadIdx.x; index < used * group; index += kThreads) {  // independent loads
    const float2 stat = __ldcg(stats + first + index);  // index = split · group + head
    split_weight[index] = stat.x;
    split_sum[index] = stat.y;
  }
  __syncthreads();
  for (int head = warp; head < group; head += kWarps) {  // a warp per head
    float top = -INFINITY;
    for (int s = lane; s < used; s += 32)
      if (split_sum[s * group + head] > 0.0f) top = fmaxf(top, split_weight[s * group + head]);
    for (int offset = 16; offset > 0; offset /= 2) top = fmaxf(top, __shfl_xor_sync(kAll, top, offset));
    float total = 0.0f;
    for (int s = lane; s < used; s += 32) {
      const float sum = split_sum[s * group + head];
      const float weight = sum > 0.0f ? __expf(split_weight[s * group + head] - top) : 0.0f;  // empty: 0
      split_weight[s * group + head] = weight;
      total += sum * weight;
    }
    for (int offset = 16; offset > 0; offset /= 2) total += __shfl_xor_sync(kAll, total, offset);
    if (lane == 0) head_total[head] = total;
  }
  __syncthreads();
  // Thread → 4 dims (a quad) of one head, kQuads of them: 16-byte loads, 8 splits' in flight at once.
  constexpr int kHeadQuads = kHeadDim / 4, kQuads = (kMaxGroup * kHeadQuads + kThreads - 1) / kThreads;
  const int quads = group * kHeadQuads;  // of one split
  const float4* const item_accumulators = reinterpret_cast<const float4*>(accumulators + first * kHeadDim);
  float4 total[kQuads];
#pragma unroll
  for (int o = 0; o < kQuads; ++o) total[o] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
  for (int s = 0; s < used; ++s)
#pragma unroll
    for (int o = 0; o < kQuads; ++o) {
      const int quad = threadIdx.x + kThreads * o;
      if (quad < quads) {
        const float4 v = __ldcg(item_accumulators + s * quads + quad);
        const float w = split_weight[s * group + quad / kHeadQuads];
        total[o].x += v.x * w;
        total[o].y += v.y * w;
        total[o].z += v.z * w;
        total[o].w += v.w * w;
      }
    }
#pragma unroll
  for (int o = 0; o < kQuads; ++o) {
    const int quad = threadIdx.x + kThreads * o;
    if (quad < quads) {
      const float inverse = 1.0f / head_total[quad / kHeadQuads];
      const float4 v = total[o];
      *reinterpret_cast<float4*>(out + first_q_row * kHeadDim + quad * 4) =
          make_float4(v.x * inverse, v.y * inverse, v.z * inverse, v.w * inverse);
    }
  }
  if (threadIdx.x == 0) counters[item] = 0;  // every used block has counted: ready for the next launch (or replay)
}

template <KvStorage S, int kHeadDim, class V, typename... Args>
void launch_shape(dim3 grid, cudaStream_t s, const Args&... args) {
  constexpr int bytes = GroupedShape<S, kHeadDim, V>::kDynamicBytes;
  // Once per instance: past the 48 KiB a launch may take without asking. The shared-memory carveout
  // is left to the driver: asking for all of L1 as shared memory (OCTET_CUDA_ATTENTION_CARVEOUT=max,
  // the setting before 2026-12-02) measured 1% slower at Llama-3.1-8B b1 and 1.5% at b8 on the H200
  // (docs/PERFORMANCE.md version 13).
  static const bool sized = [] {
    OCTET_CUDA_CHECK(cudaFuncSetAttribute(grouped_attention_kernel<S, kHeadDim, V>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    const char* carveout = std::getenv("OCTET_CUDA_ATTENTION_CARVEOUT");
    if (carveout != nullptr && std::strcmp(carveout, "max") == 0)
      OCTET_CUDA_CHECK(cudaFuncSetAttribute(grouped_attention_kernel<S, kHeadDim, V>,
                                            cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
    return true;
  }();
  (void)sized;
  launch_kernel(grouped_attention_kernel<S, kHeadDim, V>, LaunchShape{grid, dim3(V::kThreads), bytes}, s, args...);
}

template <KvStorage S, int kHeadDim, typename... Args>
void launch_dim(bool packed, bool tma, dim3 grid, cudaStream_t s, const Args&... args) {
  if constexpr (S != KvStorage::bf16) {  // BF16 stages: 5 warps' do not fit 4 blocks a SM
    if constexpr (kHeadDim == 128) {
      if (tma) return packed ? launch_shape<S, kHeadDim, PackedTma>(grid, s, args...)
                             : launch_shape<S, kHeadDim, PlainTma>(grid, s, args...);
    }
    if (packed) return launch_shape<S, kHeadDim, Packed>(grid, s, args...);
  }
  launch_shape<S, kHeadDim, Plain>(grid, s, args...);
}

template <KvStorage S, typename... Args>
void launch_storage(int64_t head_dim, bool packed, bool tma, dim3 grid, cudaStream_t s, const Args&... args) {
  if (head_dim == 128) launch_dim<S, 128>(packed, tma, grid, s, args...);
  else launch_dim<S, 64>(packed, tma, grid, s, args...);
}

// Whether a launch of `tokens` tokens in groups of `group` heads takes the packed build (FP8 caches): from
// kPackedTokens tokens on, or OCTET_CUDA_ATTENTION_PACKED_TOKENS (read at every call; past any batch: never).
bool packed_launch(int64_t tokens, int group) {
  return group <= 4 && tokens >= integer_setting("OCTET_CUDA_ATTENTION_PACKED_TOKENS", kPackedTokens, 1, int64_t{1} << 40, "a token count");
}

// The blocks the splits aim for: kTargetBlocks, or OCTET_CUDA_GROUPED_ATTENTION_BLOCKS (for tuning;
// read at every call, so that the scratch and the launch of a step agree while it stays set).
int64_t target_blocks() {
  return integer_setting("OCTET_CUDA_GROUPED_ATTENTION_BLOCKS", kTargetBlocks, 1, 1 << 20, "a block count");
}

}  // namespace

// Whether the launch takes a TMA build: FP8 rows of 128 bytes, pool blocks of whole tiles (a tile's 16
// positions are then 16 consecutive pool rows), a known pool size (the tensor maps' bounds), a device
// with the copy engine (sm_90 and later), and a launch of kTmaTokens tokens or more
// (OCTET_CUDA_ATTENTION_TMA_TOKENS, read at every call; past any batch: never).
bool grouped_attention_tma(const KvLayout& layout, int64_t tokens) {
  if (layout.storage == KvStorage::bf16 || layout.storage == KvStorage::f32 || layout.head_dim != 128) return false;
  if (layout.pool_rows <= 0 || layout.block_size % kTile != 0) return false;
  if (tokens < integer_setting("OCTET_CUDA_ATTENTION_TMA_TOKENS", kTmaTokens, 1, int64_t{1} << 40, "a token count")) return false;
  int device = 0, major = 0;
  OCTET_CUDA_CHECK(cudaGetDevice(&device));
  OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major >= 9;
}

bool grouped_attention_fits(const KvLayout& layout, int64_t heads) {
  const int64_t group = heads / layout.kv_heads;
  return layout.storage != KvStorage::f32 && (layout.head_dim == 64 || layout.head_dim == 128) && group >= 1 &&
         group <= kMaxGroup && heads % layout.kv_heads == 0;
}

int grouped_attention_splits(int64_t items, int64_t max_context) {
  const int64_t by_length = (max_context + kMinSpan - 1) / kMinSpan;
  const int64_t by_occupancy = (target_blocks() + items - 1) / items;
  return static_cast<int>(std::clamp<int64_t>(std::min(by_length, by_occupancy), 1, kMaxSplits));
}

void launch_grouped_attention(const float* q, int group, const int64_t* slots, const int64_t* positions,
                              const KvLayout& layout, const void* k_cache, const void* v_cache, const float* k_scales,
                              const float* v_scales, int64_t items, int splits, float* out, float* partial,
                              uint32_t* counters, const int32_t* token_list, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(items), static_cast<unsigned>(splits));
  const int64_t head_dim = layout.head_dim;
  const bool packed = packed_launch(items / layout.kv_heads, group), tma = grouped_attention_tma(layout, items / layout.kv_heads);
  CUtensorMap k_map{}, v_map{};  // unread by the cp.async builds
  if (tma) {
    k_map = kv_pool_tensor_map(k_cache, layout.pool_rows, layout.kv_heads, head_dim, kTile);
    v_map = kv_pool_tensor_map(v_cache, layout.pool_rows, layout.kv_heads, head_dim, kTile);
  }
  switch (layout.storage) {
    case KvStorage::bf16: launch_storage<KvStorage::bf16>(head_dim, packed, tma, grid, s, q, group, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, partial, counters, token_list, k_map, v_map); break;
    case KvStorage::e4m3: launch_storage<KvStorage::e4m3>(head_dim, packed, tma, grid, s, q, group, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, partial, counters, token_list, k_map, v_map); break;
    case KvStorage::e5m2: launch_storage<KvStorage::e5m2>(head_dim, packed, tma, grid, s, q, group, slots, positions, layout, k_cache, v_cache, k_scales, v_scales, splits, out, partial, counters, token_list, k_map, v_map); break;
    case KvStorage::f32: fail("attention: the grouped kernel takes no float32 cache");  // grouped_attention_fits
  }
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
