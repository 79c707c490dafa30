// Causal GQA attention on tensor cores for runs of a batch's tokens: consecutive positions of one
// slot (a prompt, or a chunk of one that continues what the cache holds), flash-attention-2 style.
// A block owns 64 query rows of one KV head, rows being (token, query head of the group) pairs, so
// the heads of a group share each K/V tile read from the paged cache. Per K/V tile of 64
// positions: the block widens K and V to BF16 in shared memory (FP8 codes exactly: their scales are
// applied to the float32 scores and probabilities instead), then each warp computes its 16 rows'
// scores S = Q·Kᵀ with mma.sync m16n8k16 (BF16 in, float32 accumulators), masks, updates the
// running max / sum in float32, and accumulates P·V the same way (P re-packed from S's accumulator
// registers, which have the A-operand layout). Rounding: q and p to BF16 (2^-9 relative each), and
// f32-stored K/V to BF16; the output's relative error is ~1e-3.
// FLOPs: 4 · head_dim per (row, visible position); bytes: each K/V tile once per block of 64 rows.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/kv_layout.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>

namespace octet::backend::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kTileRows = 16 * kWarps;  // 16 query rows per warp: the M of one MMA
constexpr int kTilePositions = 64;
constexpr int kPad = 8;  // BF16 elements after each shared row: lanes of a fragment load hit distinct banks
static_assert(kTileRows == kPrefillTileRows, "kernels.h states the tile height");

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (lo) in the low 16 bits
  return *reinterpret_cast<const uint32_t*>(&v);
}

// D += A · B for one 16×8×16 step; fragment layouts of the PTX ISA ("Matrix Fragments for
// mma.m16n8k16 with floating point type"), g = lane / 4, t = lane % 4:
//   A (16×16, row-major): a[0] = (g, 2t..2t+1), a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..)
//   B (16×8, k × n):      b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
//   C/D (16×8):           c[0..1] = (g, 2t..2t+1), c[2..3] = (g+8, 2t..2t+1)
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Sixteen consecutive cached elements as eight BF16 pairs (element 2i in the low half of out[i]).
// FP8 codes and BF16 values come back exactly (E4M3 and E5M2 values are BF16 values); f32 rounds
// to nearest.
template <KvStorage S>
__device__ __forceinline__ void load16_bf16(const void* cache, int64_t element_offset, uint32_t out[8]) {
  float values[16];
  load16<S>(cache, element_offset, values);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = pack_bf16(values[2 * i], values[2 * i + 1]);
}

// One block per (tile of kPrefillTileRows rows of a run, KV head). Row f of a run is query head
// (kv_head · group + f % group) of the run's token f / group; a lane holds rows g and g + 8 of its
// warp's 16. Rows past the run's end compute a copy of the tile's last row and are not written.
template <KvStorage S, int D>
__global__ void __launch_bounds__(kThreads)
prefill_attention_kernel(const float* __restrict__ q, int heads, const int64_t* __restrict__ slots,
                         const int64_t* __restrict__ positions, const PrefillTile* __restrict__ tiles, KvLayout layout,
                         const void* __restrict__ k_cache, const void* __restrict__ v_cache,
                         const float* __restrict__ k_scales, const float* __restrict__ v_scales, float* __restrict__ out) {
  await_earlier_kernels();
  constexpr bool kScaled = S == KvStorage::e4m3 || S == KvStorage::e5m2;
  constexpr int kKStride = D + kPad;               // K tile: [position][dim]
  constexpr int kVStride = kTilePositions + kPad;  // V tile, transposed: [dim][position]
  constexpr int kPieces = D / 16;                  // 16-element pieces of a cached row
  constexpr int kLoadsPerThread = kTilePositions * kPieces / kThreads;
  static_assert(kTilePositions * kPieces % kThreads == 0, "every thread loads the same number of pieces");
  __shared__ __align__(16) uint16_t k_tile[kTilePositions * kKStride];
  __shared__ __align__(16) uint16_t v_tile[D * kVStride];
  __shared__ float k_scale_tile[kTilePositions], v_scale_tile[kTilePositions];

  const PrefillTile tile = tiles[blockIdx.x];
  const int kv_heads = static_cast<int>(layout.kv_heads), kv_head = static_cast<int>(blockIdx.y);
  const int group = heads / kv_heads;
  const int tile_rows = min(kTileRows, tile.run_tokens * group - tile.first_row);
  const int32_t* table = layout.block_table + slots[tile.first_token] * layout.blocks_per_slot;
  auto token_of_row = [&](int row) { return tile.first_token + (tile.first_row + row) / group; };
  // Positions rise along the run, so the tile's last row sees the most keys: [0, kv_last].
  const int64_t kv_last = positions[token_of_row(tile_rows - 1)];

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const bool warp_active = warp * 16 < tile_rows;
  const int64_t warp_last = positions[token_of_row(min(warp * 16 + 15, tile_rows - 1))];
  int row_token[2], row_head[2];
  int64_t row_position[2];
  bool row_written[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = warp * 16 + g + 8 * i;
    row_written[i] = row < tile_rows;
    const int f = tile.first_row + min(row, tile_rows - 1);
    row_token[i] = tile.first_token + f / group;
    row_head[i] = kv_head * group + f % group;
    row_position[i] = positions[row_token[i]];
  }

  // The warp's queries as A fragments, one per 16 dims, for the whole loop.
  uint32_t qa[D / 16][4];
  {
    const float* q0 = q + (static_cast<int64_t>(row_token[0]) * heads + row_head[0]) * D;
    const float* q1 = q + (static_cast<int64_t>(row_token[1]) * heads + row_head[1]) * D;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const int c = kk * 16 + 2 * t;
      const float2 x00 = *reinterpret_cast<const float2*>(q0 + c), x10 = *reinterpret_cast<const float2*>(q1 + c);
      const float2 x01 = *reinterpret_cast<const float2*>(q0 + c + 8), x11 = *reinterpret_cast<const float2*>(q1 + c + 8);
      qa[kk][0] = pack_bf16(x00.x, x00.y);
      qa[kk][1] = pack_bf16(x10.x, x10.y);
      qa[kk][2] = pack_bf16(x01.x, x01.y);
      qa[kk][3] = pack_bf16(x11.x, x11.y);
    }
  }

  const float scale_log2 = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;  // softmax in base 2
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};  // row_sum: this lane's columns only

  for (int64_t kv0 = 0; kv0 <= kv_last; kv0 += kTilePositions) {
    __syncthreads();  // the previous tile's readers are done
    // Positions past kv_last (possibly without a block) read as zeros: finite, and masked below.
    uint32_t kw[kLoadsPerThread][8], vw[kLoadsPerThread][8];
    float ks[kLoadsPerThread], vs[kLoadsPerThread];
#pragma unroll
    for (int l = 0; l < kLoadsPerThread; ++l) {
      const int chunk = threadIdx.x + l * kThreads, p = chunk / kPieces, piece = chunk % kPieces;
      ks[l] = vs[l] = 0.0f;
#pragma unroll
      for (int i = 0; i < 8; ++i) kw[l][i] = vw[l][i] = 0u;
      if (kv0 + p <= kv_last) {
        const int64_t cell = pool_row(layout, table, kv0 + p) * kv_heads + kv_head;
        load16_bf16<S>(k_cache, cell * D + piece * 16, kw[l]);
        load16_bf16<S>(v_cache, cell * D + piece * 16, vw[l]);
        if constexpr (kScaled) {
          ks[l] = k_scales[cell];
          vs[l] = v_scales[cell];
        }
      }
    }
#pragma unroll
    for (int l = 0; l < kLoadsPerThread; ++l) {
      const int chunk = threadIdx.x + l * kThreads, p = chunk / kPieces, piece = chunk % kPieces;
      uint4* k_dst = reinterpret_cast<uint4*>(k_tile + p * kKStride + piece * 16);
      k_dst[0] = make_uint4(kw[l][0], kw[l][1], kw[l][2], kw[l][3]);
      k_dst[1] = make_uint4(kw[l][4], kw[l][5], kw[l][6], kw[l][7]);
#pragma unroll
      for (int i = 0; i < 16; ++i)
        v_tile[(piece * 16 + i) * kVStride + p] = static_cast<uint16_t>(i % 2 ? vw[l][i / 2] >> 16 : vw[l][i / 2] & 0xFFFF);
      if (kScaled && piece == 0) {
        k_scale_tile[p] = ks[l];
        v_scale_tile[p] = vs[l];
      }
    }
    __syncthreads();
    if (!warp_active || kv0 > warp_last) continue;  // warp-uniform: no key of this tile is visible to its rows

    // S = Q · Kᵀ for the warp's 16 rows × 64 positions (8 accumulator tiles of 16 × 8).
    float s[kTilePositions / 8][4];
#pragma unroll
    for (int j = 0; j < kTilePositions / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
      for (int j = 0; j < kTilePositions / 8; ++j) {
        const uint16_t* key = k_tile + (j * 8 + g) * kKStride + kk * 16 + 2 * t;
        mma_bf16(s[j], qa[kk], *reinterpret_cast<const uint32_t*>(key), *reinterpret_cast<const uint32_t*>(key + 8));
      }

    // Scale (and FP8 K scale per position), causal mask, online softmax.
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kTilePositions / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int column = j * 8 + 2 * t + (e & 1), i = e >> 1;
        float x = s[j][e] * scale_log2;
        if constexpr (kScaled) x *= k_scale_tile[column];
        if (kv0 + column > row_position[i]) x = -INFINITY;
        s[j][e] = x;
        tile_max[i] = fmaxf(tile_max[i], x);
      }
    float base[2], correction[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xFFFFFFFF, tile_max[i], 1));
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xFFFFFFFF, tile_max[i], 2));
      const float new_max = fmaxf(row_max[i], tile_max[i]);
      base[i] = new_max == -INFINITY ? 0.0f : new_max;  // never -inf - (-inf)
      correction[i] = exp2f(row_max[i] - base[i]);        // 0 before the first visible key
      row_max[i] = new_max;
      row_sum[i] *= correction[i];
    }
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[n][0] *= correction[0];
      o[n][1] *= correction[0];
      o[n][2] *= correction[1];
      o[n][3] *= correction[1];
    }
#pragma unroll
    for (int j = 0; j < kTilePositions / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = exp2f(s[j][e] - base[e >> 1]);
        row_sum[e >> 1] += p;
        s[j][e] = p;
      }

    // O += P · V, 16 positions per step: accumulator tiles 2u and 2u + 1 are the A fragment
    // (columns 16u + 2t.. and 16u + 8 + 2t..), with the FP8 V scale of each position folded in.
#pragma unroll
    for (int u = 0; u < kTilePositions / 16; ++u) {
      const int c = 16 * u + 2 * t;
      float va0 = 1.0f, va1 = 1.0f, vb0 = 1.0f, vb1 = 1.0f;
      if constexpr (kScaled) {
        va0 = v_scale_tile[c];
        va1 = v_scale_tile[c + 1];
        vb0 = v_scale_tile[c + 8];
        vb1 = v_scale_tile[c + 9];
      }
      const uint32_t pa[4] = {pack_bf16(s[2 * u][0] * va0, s[2 * u][1] * va1), pack_bf16(s[2 * u][2] * va0, s[2 * u][3] * va1),
                              pack_bf16(s[2 * u + 1][0] * vb0, s[2 * u + 1][1] * vb1),
                              pack_bf16(s[2 * u + 1][2] * vb0, s[2 * u + 1][3] * vb1)};
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        const uint16_t* value = v_tile + (n * 8 + g) * kVStride + c;
        mma_bf16(o[n], pa, *reinterpret_cast<const uint32_t*>(value), *reinterpret_cast<const uint32_t*>(value + 8));
      }
    }
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    row_sum[i] += __shfl_xor_sync(0xFFFFFFFF, row_sum[i], 1);
    row_sum[i] += __shfl_xor_sync(0xFFFFFFFF, row_sum[i], 2);
  }
  if (!warp_active) return;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (!row_written[i]) continue;
    const float inverse = 1.0f / row_sum[i];  // > 0: position 0 is visible to every row
    float* dst = out + (static_cast<int64_t>(row_token[i]) * heads + row_head[i]) * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<float2*>(dst + n * 8 + 2 * t) = make_float2(o[n][2 * i] * inverse, o[n][2 * i + 1] * inverse);
  }
}

template <KvStorage S>
void launch_for_storage(dim3 grid, cudaStream_t s, const float* q, int heads, const int64_t* slots,
                        const int64_t* positions, const PrefillTile* tiles, const KvLayout& layout, const void* k_cache,
                        const void* v_cache, const float* k_scales, const float* v_scales, float* out) {
  if (layout.head_dim == 128)
    launch_kernel(prefill_attention_kernel<S, 128>, LaunchShape{grid, dim3(kThreads)}, s,
                  q, heads, slots, positions, tiles,
                  layout, k_cache, v_cache, k_scales, v_scales, out);
  else
    launch_kernel(prefill_attention_kernel<S, 64>, LaunchShape{grid, dim3(kThreads)}, s,
                  q, heads, slots, positions, tiles,
                  layout, k_cache, v_cache, k_scales, v_scales, out);
}

}  // namespace

bool prefill_attention_fits(int64_t head_dim) { return head_dim == 64 || head_dim == 128; }

PrefillPlan plan_prefill_attention(const int64_t* slots, const int64_t* positions, int64_t tokens, int64_t group,
                                   int64_t min_run_tokens) {
  PrefillPlan plan;
  std::vector<int64_t> tile_last_positions;
  for (int64_t begin = 0; begin < tokens;) {
    int64_t end = begin + 1;
    while (end < tokens && slots[end] == slots[begin] && positions[end] == positions[end - 1] + 1) ++end;
    const int64_t run_tokens = end - begin;
    if (run_tokens >= min_run_tokens) {
      const int64_t rows = run_tokens * group;
      for (int64_t first_row = 0; first_row < rows; first_row += kPrefillTileRows) {
        plan.tiles.push_back(PrefillTile{static_cast<int32_t>(begin), static_cast<int32_t>(run_tokens),
                                         static_cast<int32_t>(first_row)});
        const int64_t last_row = std::min(rows, first_row + kPrefillTileRows) - 1;
        tile_last_positions.push_back(positions[begin + last_row / group]);
      }
    } else {
      for (int64_t token = begin; token < end; ++token) plan.other_tokens.push_back(static_cast<int32_t>(token));
    }
    begin = end;
  }
  // Tiles that see the most keys first, so the short ones fill in behind them at the end of the grid.
  std::vector<size_t> order(plan.tiles.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tile_last_positions[a] > tile_last_positions[b]; });
  std::vector<PrefillTile> sorted;
  sorted.reserve(order.size());
  for (size_t i : order) sorted.push_back(plan.tiles[i]);
  plan.tiles = std::move(sorted);
  return plan;
}

void launch_prefill_attention(const float* q, int64_t heads, const int64_t* slots, const int64_t* positions,
                              const PrefillTile* tiles, int64_t tile_count, const KvLayout& layout, const void* k_cache,
                              const void* v_cache, const float* k_scales, const float* v_scales, float* out,
                              cudaStream_t s) {
  if (!prefill_attention_fits(layout.head_dim)) fail("prefill attention: head_dim {} is not 64 or 128", layout.head_dim);
  if (heads % layout.kv_heads != 0) fail("prefill attention: {} heads are not a multiple of {} kv heads", heads, layout.kv_heads);
  if (tile_count == 0) return;
  const dim3 grid(static_cast<unsigned>(tile_count), static_cast<unsigned>(layout.kv_heads));
  const int h = static_cast<int>(heads);
  switch (layout.storage) {
    case KvStorage::f32: launch_for_storage<KvStorage::f32>(grid, s, q, h, slots, positions, tiles, layout, k_cache, v_cache, k_scales, v_scales, out); break;
    case KvStorage::bf16: launch_for_storage<KvStorage::bf16>(grid, s, q, h, slots, positions, tiles, layout, k_cache, v_cache, k_scales, v_scales, out); break;
    case KvStorage::e4m3: launch_for_storage<KvStorage::e4m3>(grid, s, q, h, slots, positions, tiles, layout, k_cache, v_cache, k_scales, v_scales, out); break;
    case KvStorage::e5m2: launch_for_storage<KvStorage::e5m2>(grid, s, q, h, slots, positions, tiles, layout, k_cache, v_cache, k_scales, v_scales, out); break;
  }
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
