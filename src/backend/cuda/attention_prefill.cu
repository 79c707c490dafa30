// Causal GQA attention on tensor cores for runs of a batch's tokens: consecutive positions of one
// slot (a prompt, or a chunk of one that continues what the cache holds), flash-attention-2 style.
// A block owns a tile of query rows of one KV head, rows being (token, query head of the group)
// pairs, so the heads of a group share each K/V tile read from the paged cache. Per K/V tile of 64
// positions: the block widens K and V to BF16 in shared memory (FP8 codes exactly: their scales are
// applied to the float32 scores and probabilities instead), then each warp computes its 16 rows'
// scores S = Q·Kᵀ with mma.sync m16n8k16 (BF16 in, float32 accumulators), masks, updates the
// running max / sum in float32, and accumulates P·V the same way (P re-packed from S's accumulator
// registers, which have the A-operand layout). Rounding: q and p to BF16 (2^-9 relative each), and
// f32-stored K/V to BF16; the output's relative error is ~1e-3.
// The kernel is pipelined: 128 rows per block (8 warps); the global loads of the next K/V tile are
// issued into registers before the warps compute on the current one, then widened into the other of
// two shared buffers (one barrier per tile); K and V are both stored [position][dim] with a padded
// row and read as B fragments by ldmatrix (.trans for V), conflict-free; the causal mask is applied
// only where a tile crosses the warp's first row; the host plan puts the tiles that see the most
// keys first. (The first kernel, 64 rows a block with loads and MMAs of a tile one after the other,
// was slower and is removed: docs/PERFORMANCE.md version 6.)
// FLOPs: 4 · head_dim per (row, visible position); bytes: each K/V tile once per block of rows.
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

constexpr int kTilePositions = 64;
constexpr int kPad = 8;  // BF16 elements after each shared row: lanes of a fragment load hit distinct banks

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

// The block's tile of a run and the warp's 16 rows in it. Row f of a run is query head
// (kv_head · group + f % group) of the run's token f / group; a lane holds rows g and g + 8 of its
// warp's 16. Rows past the run's end compute a copy of the tile's last row and are not written.
struct WarpRows {
  int tile_rows;       // rows of the block's tile inside the run
  int64_t kv_last;     // the tile's last row sees keys [0, kv_last] (positions rise along the run)
  bool active;         // the warp has rows inside the run
  int64_t first_seen;  // the warp's first row sees [0, first_seen] ...
  int64_t last_seen;   // ... and its last [0, last_seen]
  int token[2], head[2];
  int64_t position[2];
  bool written[2];
};

__device__ __forceinline__ WarpRows warp_rows(const PrefillTile& tile, int block_rows, int group, int kv_head,
                                              const int64_t* positions, int warp, int g) {
  WarpRows r;
  r.tile_rows = min(block_rows, tile.run_tokens * group - tile.first_row);
  auto token_of_row = [&](int row) { return tile.first_token + (tile.first_row + min(row, r.tile_rows - 1)) / group; };
  r.kv_last = positions[token_of_row(r.tile_rows - 1)];
  r.active = warp * 16 < r.tile_rows;
  r.first_seen = positions[token_of_row(warp * 16)];
  r.last_seen = positions[token_of_row(warp * 16 + 15)];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = warp * 16 + g + 8 * i;
    r.written[i] = row < r.tile_rows;
    const int f = tile.first_row + min(row, r.tile_rows - 1);
    r.token[i] = tile.first_token + f / group;
    r.head[i] = kv_head * group + f % group;
    r.position[i] = positions[r.token[i]];
  }
  return r;
}

// The warp's queries as A fragments, one per 16 dims, for the whole loop.
template <int D>
__device__ __forceinline__ void load_query_fragments(const float* q, int heads, const WarpRows& rows, int t,
                                                     uint32_t (&qa)[D / 16][4]) {
  const float* q0 = q + (static_cast<int64_t>(rows.token[0]) * heads + rows.head[0]) * D;
  const float* q1 = q + (static_cast<int64_t>(rows.token[1]) * heads + rows.head[1]) * D;
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

// The running softmax of the warp's rows: max and sum (this lane's columns only) in base 2, and
// the output accumulators.
template <int D>
struct SoftmaxState {
  float o[D / 8][4];
  float row_max[2], row_sum[2];
};

template <int D>
__device__ __forceinline__ void start_softmax(SoftmaxState<D>& st) {
#pragma unroll
  for (int n = 0; n < D / 8; ++n) st.o[n][0] = st.o[n][1] = st.o[n][2] = st.o[n][3] = 0.0f;
  st.row_max[0] = st.row_max[1] = -INFINITY;
  st.row_sum[0] = st.row_sum[1] = 0.0f;
}

// One K/V tile's scores s (the warp's 16 rows × kTilePositions, raw Q·Kᵀ accumulators) become the
// probabilities against the updated running max: scaled (and by the FP8 K scale of each position,
// k_scale_tile, 8-byte aligned, when kScaled), causally masked when `masked` (positions past a
// row's own are -inf), the output and sums rescaled by the change of max.
template <bool kScaled, int D>
__device__ __forceinline__ void softmax_tile(float (&s)[kTilePositions / 8][4], SoftmaxState<D>& st,
                                             const float* k_scale_tile, int64_t kv0, const WarpRows& rows, bool masked,
                                             int t) {
  const float scale_log2 = rsqrtf(static_cast<float>(D)) * 1.4426950408889634f;  // softmax in base 2
  float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int j = 0; j < kTilePositions / 8; ++j) {
    float2 k_scale = make_float2(1.0f, 1.0f);
    if constexpr (kScaled) k_scale = *reinterpret_cast<const float2*>(k_scale_tile + j * 8 + 2 * t);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int column = j * 8 + 2 * t + (e & 1), i = e >> 1;
      float x = s[j][e] * scale_log2;
      if constexpr (kScaled) x *= e & 1 ? k_scale.y : k_scale.x;
      if (masked && kv0 + column > rows.position[i]) x = -INFINITY;
      s[j][e] = x;
      tile_max[i] = fmaxf(tile_max[i], x);
    }
  }
  float base[2], correction[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xFFFFFFFF, tile_max[i], 1));
    tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xFFFFFFFF, tile_max[i], 2));
    const float new_max = fmaxf(st.row_max[i], tile_max[i]);
    base[i] = new_max == -INFINITY ? 0.0f : new_max;  // never -inf - (-inf)
    correction[i] = exp2f(st.row_max[i] - base[i]);     // 0 before the first visible key
    st.row_max[i] = new_max;
    st.row_sum[i] *= correction[i];
  }
  // Once the rows' maxima settle the factors are exactly 1 in every lane: the warp skips the products (a
  // product by 1 changes no bit).
  if (__any_sync(0xFFFFFFFF, correction[0] != 1.0f || correction[1] != 1.0f)) {
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      st.o[n][0] *= correction[0];
      st.o[n][1] *= correction[0];
      st.o[n][2] *= correction[1];
      st.o[n][3] *= correction[1];
    }
  }
#pragma unroll
  for (int j = 0; j < kTilePositions / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float p = exp2f(s[j][e] - base[e >> 1]);
      st.row_sum[e >> 1] += p;
      s[j][e] = p;
    }
}

// The A fragment of P · V for positions 16u..16u+15: accumulator tiles 2u and 2u + 1 (columns
// 16u + 2t.. and 16u + 8 + 2t..), with the FP8 V scale of each position (v_scale_tile, 8-byte
// aligned) folded in before the BF16 rounding.
template <bool kScaled>
__device__ __forceinline__ void probability_fragment(const float (&s)[kTilePositions / 8][4], int u,
                                                     const float* v_scale_tile, int t, uint32_t (&pa)[4]) {
  float2 va = make_float2(1.0f, 1.0f), vb = make_float2(1.0f, 1.0f);
  if constexpr (kScaled) {
    va = *reinterpret_cast<const float2*>(v_scale_tile + 16 * u + 2 * t);
    vb = *reinterpret_cast<const float2*>(v_scale_tile + 16 * u + 2 * t + 8);
  }
  pa[0] = pack_bf16(s[2 * u][0] * va.x, s[2 * u][1] * va.y);
  pa[1] = pack_bf16(s[2 * u][2] * va.x, s[2 * u][3] * va.y);
  pa[2] = pack_bf16(s[2 * u + 1][0] * vb.x, s[2 * u + 1][1] * vb.y);
  pa[3] = pack_bf16(s[2 * u + 1][2] * vb.x, s[2 * u + 1][3] * vb.y);
}

// The warp's rows of the output, normalised; every lane of the warp calls it (the sums are
// reduced across the four lanes of a row).
template <int D>
__device__ __forceinline__ void write_rows(SoftmaxState<D>& st, const WarpRows& rows, int heads, int t, float* out) {
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    st.row_sum[i] += __shfl_xor_sync(0xFFFFFFFF, st.row_sum[i], 1);
    st.row_sum[i] += __shfl_xor_sync(0xFFFFFFFF, st.row_sum[i], 2);
  }
  if (!rows.active) return;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (!rows.written[i]) continue;
    const float inverse = 1.0f / st.row_sum[i];  // > 0: position 0 is visible to every row
    float* dst = out + (static_cast<int64_t>(rows.token[i]) * heads + rows.head[i]) * D;
#pragma unroll
    for (int n = 0; n < D / 8; ++n)
      *reinterpret_cast<float2*>(dst + n * 8 + 2 * t) = make_float2(st.o[n][2 * i] * inverse, st.o[n][2 * i + 1] * inverse);
  }
}

constexpr int kPipelinedWarps = 8;
constexpr int kPipelinedThreads = kPipelinedWarps * 32;
static_assert(16 * kPipelinedWarps == kPrefillTileRows, "kernels.h states the tile height");

// The 16 cached elements of one piece as loaded, before widening: 1, 2 or 4 16-byte words.
template <KvStorage S>
struct RawPiece {
  static constexpr int kElementBytes = S == KvStorage::f32 ? 4 : S == KvStorage::bf16 ? 2 : 1;
  uint4 words[kElementBytes];
};

template <KvStorage S>
__device__ __forceinline__ void load_raw_piece(const void* cache, int64_t element_offset, RawPiece<S>& out) {
  const uint4* source =
      reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(cache) + element_offset * RawPiece<S>::kElementBytes);
#pragma unroll
  for (int i = 0; i < RawPiece<S>::kElementBytes; ++i) out.words[i] = source[i];
}

// The piece as eight BF16 pairs (element 2i in the low half of out[i]): FP8 and BF16 exactly (E4M3
// and E5M2 values are BF16 values), f32 rounded to nearest.
template <KvStorage S>
__device__ __forceinline__ void widen_raw_piece(const RawPiece<S>& in, uint32_t out[8]) {
  if constexpr (S == KvStorage::e4m3 || S == KvStorage::e5m2) {
    constexpr __nv_fp8_interpretation_t kind = S == KvStorage::e4m3 ? __NV_E4M3 : __NV_E5M2;
    const uint32_t words[4] = {in.words[0].x, in.words[0].y, in.words[0].z, in.words[0].w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const float2 a = widen_fp8_pair(static_cast<uint16_t>(words[w] & 0xFFFF), kind);
      const float2 b = widen_fp8_pair(static_cast<uint16_t>(words[w] >> 16), kind);
      out[2 * w] = pack_bf16(a.x, a.y);
      out[2 * w + 1] = pack_bf16(b.x, b.y);
    }
  } else if constexpr (S == KvStorage::bf16) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      out[4 * h] = in.words[h].x;
      out[4 * h + 1] = in.words[h].y;
      out[4 * h + 2] = in.words[h].z;
      out[4 * h + 3] = in.words[h].w;
    }
  } else {
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float4 v = *reinterpret_cast<const float4*>(&in.words[q]);
      out[2 * q] = pack_bf16(v.x, v.y);
      out[2 * q + 1] = pack_bf16(v.z, v.w);
    }
  }
}

// Four 8×8 BF16 matrices from shared memory; lane l names row l % 8 of matrix l / 8 (16 bytes,
// 16-byte aligned). Without .trans, lane (g, t) receives of matrix i the elements (g, 2t..2t+1);
// with .trans, (2t, g) and (2t+1, g): the B fragment of mma.m16n8k16 either way, for B stored
// n-major (K: [position][dim]) or k-major (V: [position][dim]).
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const uint16_t* row) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const uint16_t* row) {
  const auto address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// Dynamic shared memory of the pipelined kernel: two buffers, each a K and a V tile of
// kTilePositions rows of D + kPad BF16 elements.
template <int D>
constexpr int pipelined_shared_bytes() {
  return 2 * 2 * kTilePositions * (D + kPad) * static_cast<int>(sizeof(uint16_t));
}

// One block per (KV head, tile of kPrefillTileRows rows of a run), rows as in WarpRows; the KV head
// varies fastest, so blocks start in the plan's order of falling work across all heads. Per
// iteration: widen the K/V tile already in registers into shared buffer b, barrier, issue the next
// tile's loads into registers, compute on buffer b. The barrier also orders the next iteration's
// writes to buffer b ^ 1 after every warp's reads of it (two iterations back).
template <KvStorage S, int D>
__global__ void __launch_bounds__(kPipelinedThreads, 1)
prefill_attention_pipelined_kernel(const float* __restrict__ q, int heads, const int64_t* __restrict__ slots,
                                   const int64_t* __restrict__ positions, const PrefillTile* __restrict__ tiles,
                                   KvLayout layout, const void* __restrict__ k_cache, const void* __restrict__ v_cache,
                                   const float* __restrict__ k_scales, const float* __restrict__ v_scales,
                                   float* __restrict__ out) {
  constexpr bool kScaled = S == KvStorage::e4m3 || S == KvStorage::e5m2;
  constexpr int kStride = D + kPad;  // K and V tiles: [position][dim]; 16 bytes of padding per row
  constexpr int kTileElements = kTilePositions * kStride;
  constexpr int kPieces = D / 16;  // 16-element pieces of a cached row
  constexpr int kLoadsPerThread = kTilePositions * kPieces / kPipelinedThreads;
  static_assert(kTilePositions * kPieces % kPipelinedThreads == 0, "every thread loads the same number of pieces");
  static_assert(D % 32 == 0, "Q·Kᵀ takes 32 dims per ldmatrix");
  extern __shared__ __align__(16) uint8_t dynamic_shared[];
  uint16_t* const kv_tiles = reinterpret_cast<uint16_t*>(dynamic_shared);  // [buffer][K, V][kTileElements]
  __shared__ __align__(8) float scale_tiles[2][2][kTilePositions];          // [buffer][K, V][position]

  await_earlier_kernels();
  const PrefillTile tile = tiles[blockIdx.y];
  const int kv_heads = static_cast<int>(layout.kv_heads), kv_head = static_cast<int>(blockIdx.x);
  const int32_t* table = layout.block_table + slots[tile.first_token] * layout.blocks_per_slot;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const WarpRows rows = warp_rows(tile, kPrefillTileRows, heads / kv_heads, kv_head, positions, warp, g);
  uint32_t qa[D / 16][4];
  load_query_fragments<D>(q, heads, rows, t, qa);
  SoftmaxState<D> st;
  start_softmax(st);

  // The next K/V tile in flight: this thread's pieces (position chunk / kPieces, dims 16 · (chunk %
  // kPieces) ..) and, for the threads of piece 0, the positions' scales. Positions past kv_last
  // (possibly without a block) stay zero: finite, and masked.
  RawPiece<S> k_raw[kLoadsPerThread], v_raw[kLoadsPerThread];
  float k_scale_raw[kLoadsPerThread], v_scale_raw[kLoadsPerThread];
  auto fetch = [&](int64_t kv0) {
#pragma unroll
    for (int l = 0; l < kLoadsPerThread; ++l) {
      const int chunk = threadIdx.x + l * kPipelinedThreads, p = chunk / kPieces, piece = chunk % kPieces;
      k_raw[l] = v_raw[l] = RawPiece<S>{};
      k_scale_raw[l] = v_scale_raw[l] = 0.0f;
      if (kv0 + p <= rows.kv_last) {
        const int64_t cell = pool_row(layout, table, kv0 + p) * kv_heads + kv_head;
        load_raw_piece<S>(k_cache, cell * D + piece * 16, k_raw[l]);
        load_raw_piece<S>(v_cache, cell * D + piece * 16, v_raw[l]);
        if (kScaled && piece == 0) {
          k_scale_raw[l] = k_scales[cell];
          v_scale_raw[l] = v_scales[cell];
        }
      }
    }
  };
  // Widened into buffer b. Each piece is two 16-byte stores; lanes of pieces 4..7 store their second
  // half first, so the eight lanes of a store phase cover all 32 banks.
  auto stash = [&](int b) {
    uint16_t* k_tile = kv_tiles + (2 * b) * kTileElements;
    uint16_t* v_tile = k_tile + kTileElements;
#pragma unroll
    for (int l = 0; l < kLoadsPerThread; ++l) {
      const int chunk = threadIdx.x + l * kPipelinedThreads, p = chunk / kPieces, piece = chunk % kPieces;
      const int first_half = (piece >> 2) & 1;
      uint32_t kw[8], vw[8];
      widen_raw_piece<S>(k_raw[l], kw);
      widen_raw_piece<S>(v_raw[l], vw);
      uint4* k_dst = reinterpret_cast<uint4*>(k_tile + p * kStride + piece * 16);
      uint4* v_dst = reinterpret_cast<uint4*>(v_tile + p * kStride + piece * 16);
      const uint4 k_halves[2] = {make_uint4(kw[0], kw[1], kw[2], kw[3]), make_uint4(kw[4], kw[5], kw[6], kw[7])};
      const uint4 v_halves[2] = {make_uint4(vw[0], vw[1], vw[2], vw[3]), make_uint4(vw[4], vw[5], vw[6], vw[7])};
      k_dst[first_half] = first_half ? k_halves[1] : k_halves[0];  // selects: no runtime index into registers
      v_dst[first_half] = first_half ? v_halves[1] : v_halves[0];
      k_dst[first_half ^ 1] = first_half ? k_halves[0] : k_halves[1];
      v_dst[first_half ^ 1] = first_half ? v_halves[0] : v_halves[1];
      if (kScaled && piece == 0) {
        scale_tiles[b][0][p] = k_scale_raw[l];
        scale_tiles[b][1][p] = v_scale_raw[l];
      }
    }
  };

  fetch(0);
  int b = 0;
  for (int64_t kv0 = 0; kv0 <= rows.kv_last; kv0 += kTilePositions, b ^= 1) {
    stash(b);
    __syncthreads();
    if (kv0 + kTilePositions <= rows.kv_last) fetch(kv0 + kTilePositions);  // in flight during the MMAs below
    if (!rows.active || kv0 > rows.last_seen) continue;  // warp-uniform: no key of this tile is visible to its rows
    const uint16_t* k_tile = kv_tiles + (2 * b) * kTileElements;
    const uint16_t* v_tile = k_tile + kTileElements;

    // S = Q · Kᵀ for the warp's 16 rows × 64 positions (8 accumulator tiles of 16 × 8). One ldmatrix
    // gives positions 8j.. × dims 16kk..16kk+31: the B fragments of steps kk and kk + 1.
    float s[kTilePositions / 8][4];
#pragma unroll
    for (int j = 0; j < kTilePositions / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk += 2)
#pragma unroll
      for (int j = 0; j < kTilePositions / 8; ++j) {
        uint32_t kb[4];
        ldmatrix_x4(kb, k_tile + (j * 8 + lane % 8) * kStride + kk * 16 + (lane / 8) * 8);
        mma_bf16(s[j], qa[kk], kb[0], kb[1]);
        mma_bf16(s[j], qa[kk + 1], kb[2], kb[3]);
      }
    // The mask only where the tile reaches past the warp's first row (positions past kv_last are
    // among the masked).
    softmax_tile<kScaled, D>(s, st, scale_tiles[b][0], kv0, rows, kv0 + kTilePositions - 1 > rows.first_seen, t);

    // O += P · V, 16 positions per step. One ldmatrix.trans gives positions 16u..16u+15 × dims
    // 8n..8n+15: the B fragments of n and n + 1.
#pragma unroll
    for (int u = 0; u < kTilePositions / 16; ++u) {
      uint32_t pa[4];
      probability_fragment<kScaled>(s, u, scale_tiles[b][1], t, pa);
#pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, v_tile + (16 * u + (lane & 8) + lane % 8) * kStride + (n + lane / 16) * 8);
        mma_bf16(st.o[n], pa, vb[0], vb[1]);
        mma_bf16(st.o[n + 1], pa, vb[2], vb[3]);
      }
    }
  }
  write_rows<D>(st, rows, heads, t, out);
}

// Every launch of this file (through launch.cuh's launch_kernel), for head_dim D; grid is (KV heads,
// tiles).
template <KvStorage S, int D>
void launch_prefill(dim3 grid, cudaStream_t s, const float* q, int heads, const int64_t* slots,
                    const int64_t* positions, const PrefillTile* tiles, const KvLayout& layout, const void* k_cache,
                    const void* v_cache, const float* k_scales, const float* v_scales, float* out) {
  // D = 128 needs 68 KiB, past the 48 KiB a launch may take without asking.
  constexpr int shared_bytes = pipelined_shared_bytes<D>();
  OCTET_CUDA_CHECK(cudaFuncSetAttribute(prefill_attention_pipelined_kernel<S, D>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes));
  launch_kernel(prefill_attention_pipelined_kernel<S, D>, LaunchShape{grid, dim3(kPipelinedThreads), shared_bytes}, s, q,
                heads, slots, positions, tiles, layout, k_cache, v_cache, k_scales, v_scales, out);
}

template <KvStorage S>
void launch_for_storage(dim3 grid, cudaStream_t s, const float* q, int heads, const int64_t* slots,
                        const int64_t* positions, const PrefillTile* tiles, const KvLayout& layout, const void* k_cache,
                        const void* v_cache, const float* k_scales, const float* v_scales, float* out) {
  if (layout.head_dim == 128)
    launch_prefill<S, 128>(grid, s, q, heads, slots, positions, tiles, layout, k_cache, v_cache, k_scales, v_scales, out);
  else
    launch_prefill<S, 64>(grid, s, q, heads, slots, positions, tiles, layout, k_cache, v_cache, k_scales, v_scales, out);
}

}  // namespace

bool prefill_attention_fits(int64_t head_dim) { return head_dim == 64 || head_dim == 128; }

PrefillPlan plan_prefill_attention(const int64_t* slots, const int64_t* positions, int64_t tokens, int64_t group,
                                   int64_t min_run_tokens) {
  const int64_t tile_rows = kPrefillTileRows;
  PrefillPlan plan;
  std::vector<int64_t> tile_last_positions;
  for (int64_t begin = 0; begin < tokens;) {
    int64_t end = begin + 1;
    while (end < tokens && slots[end] == slots[begin] && positions[end] == positions[end - 1] + 1) ++end;
    const int64_t run_tokens = end - begin;
    if (run_tokens >= min_run_tokens) {
      const int64_t rows = run_tokens * group;
      for (int64_t first_row = 0; first_row < rows; first_row += tile_rows) {
        plan.tiles.push_back(PrefillTile{static_cast<int32_t>(begin), static_cast<int32_t>(run_tokens),
                                         static_cast<int32_t>(first_row)});
        const int64_t last_row = std::min(rows, first_row + tile_rows) - 1;
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
  if (tile_count > 65535)
    fail("prefill attention: {} tiles of {} rows, more than the 65535 blocks of a grid's y dimension", tile_count,
         kPrefillTileRows);
  const dim3 grid(static_cast<unsigned>(layout.kv_heads), static_cast<unsigned>(tile_count));
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
