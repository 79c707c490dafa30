// FP8 E4M3 GEMV / skinny GEMM for decode: y[m, n] = sx[m] · sw[n] · Σ_k x[m, k] · w[n, k], rows ≤ 8.
//
// Roofline. Bytes: n·k weight bytes, read once, dominate (x: rows·k bytes from L1/L2; y: rows·n·4);
// FLOPs 2·rows·n·k. At rows = 1 that is 1 FLOP per weight byte, far below any compute ceiling, so the
// floor is n·k / bandwidth: 28672×8192 (235 MB) ≈ 78 µs and 8192×28672 the same at 3.0 TB/s.
//
// Why tensor cores in a memory-bound kernel: widening E4M3 on CUDA cores costs ~4 instructions per
// weight byte per token (cvt to half2, to float, FMA, plus the same for x), which at rows = 8 would
// exceed the SM issue rate at full bandwidth. One mma.sync.m16n8k32 (E4M3 × E4M3 → f32, sm_89+)
// consumes 512 weight bytes for up to 8 tokens at once, so the instruction stream stays tiny and the
// warps spend their time waiting on loads, which is what a memory-bound kernel should do.
//
// Layout. A block owns 16·kRowTiles output rows; its kWarps warps split K into 64-byte tiles
// (tile t goes to warp t % kWarps) and reduce through shared memory at the end, in a fixed order
// (deterministic). Per tile, lane (group g = lane/4, quad q = lane%4) loads 16 contiguous bytes of
// rows g and g+8 at byte 16q of the tile (full 32-byte sectors across the warp) and 16 bytes of token
// g's activations at the same offset. Because a dot product does not care how k is ordered, as long
// as A and B agree, those 16 bytes are used as two mma k-steps: bytes [0,4) and [4,8) are the
// fragment registers a0/a2 (A) and b0/b1 (B) of step one, bytes [8,16) those of step two. In
// mma.m16n8k32 (PTX ISA "Matrix fragments for mma.m16n8k32"), a thread with quad q holds A columns
// 4q..4q+3 (a0, a1) and 16+4q..16+4q+3 (a2, a3) and B rows with the same k indices, so both operands
// see the same permutation of k.
//
// Precision: every E4M3 product is exact in float32; each tile's two chained mmas start from zero and
// are then added to float32 accumulators, so whatever internal accumulation width the tensor core
// uses only ever spans 64 products (Hopper's FP8 MMA is known to keep fewer than 32 bits internally).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

#include <cuda_runtime.h>

namespace octet::backend::cuda {
namespace {

constexpr int64_t kTileBytes = 64;  // K bytes per tile: two m16n8k32 steps

__device__ __forceinline__ void mma_e4m3_m16n8k32(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                  uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
  __trap();  // the host refuses FP8 below compute capability 8.9 before launching
#endif
}

// lo: 16 bytes of row g, hi: of row g + 8, b: of token g, all at the same k offset.
__device__ __forceinline__ void mma_tile(float (&acc)[4], const uint4& lo, const uint4& hi, const uint4& b) {
  float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  mma_e4m3_m16n8k32(d, lo.x, hi.x, lo.y, hi.y, b.x, b.y);
  mma_e4m3_m16n8k32(d, lo.z, hi.z, lo.w, hi.w, b.z, b.w);
#pragma unroll
  for (int i = 0; i < 4; ++i) acc[i] += d[i];
}

// Weights are read exactly once: stream them past L1 and mark them evict-first in L2, which then keeps
// the activations (and the KV cache) instead.
__device__ __forceinline__ uint4 load_weights(const uint8_t* p) { return __ldcs(reinterpret_cast<const uint4*>(p)); }

// Lanes of tokens past `rows` read token 0's bytes (always valid) and zero them: no branch around the
// load, so the compiler keeps it in the same batch as the weight loads.
__device__ __forceinline__ uint4 load_activations(const uint8_t* p, bool keep) {
  const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
  return keep ? v : make_uint4(0, 0, 0, 0);
}

// The occupancy bound (16 warps per SM, hence at most 128 registers) matters for speed: without it
// ptxas interleaves each load with the mma that consumes it to save registers, leaving a few loads in
// flight per warp; with it, all kUnroll · (2 · kRowTiles + 1) loads of a group are issued before the
// first mma (checked in the sm_90a SASS).
template <int kWarps, int kRowTiles, int kUnroll>
__global__ void __launch_bounds__(kWarps * 32, 16 / kWarps)
gemv_e4m3_kernel(const uint8_t* __restrict__ x, const float* __restrict__ x_scales, int rows,
                 const uint8_t* __restrict__ w, const float* __restrict__ w_scales, int64_t n, int64_t k_padded,
                 float* __restrict__ y) {
  __shared__ float partial[kWarps][kRowTiles][32][4];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / 4, quad = lane % 4;
  const int64_t row_base = static_cast<int64_t>(blockIdx.x) * 16 * kRowTiles;
  const int64_t tiles = k_padded / kTileBytes;

  // Rows past n (the last block of an n that is not a multiple of 16) re-read row n − 1; their results
  // are dropped at the end.
  const uint8_t* w_lo[kRowTiles];
  const uint8_t* w_hi[kRowTiles];
#pragma unroll
  for (int r = 0; r < kRowTiles; ++r) {
    const int64_t lo = min(row_base + 16 * r + group, n - 1), hi = min(row_base + 16 * r + group + 8, n - 1);
    w_lo[r] = w + lo * k_padded + quad * 16;
    w_hi[r] = w + hi * k_padded + quad * 16;
  }
  const bool has_token = group < rows;  // B columns past `rows` stay zero
  const uint8_t* x_row = x + static_cast<int64_t>(has_token ? group : 0) * k_padded + quad * 16;

  float acc[kRowTiles][4];
#pragma unroll
  for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[r][i] = 0.0f;

  int64_t tile = warp;
  for (; tile + (kUnroll - 1) * kWarps < tiles; tile += kUnroll * kWarps) {
    uint4 a_lo[kUnroll][kRowTiles], a_hi[kUnroll][kRowTiles], b[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {  // every load of the group is issued before the first mma
      const int64_t offset = (tile + u * kWarps) * kTileBytes;
#pragma unroll
      for (int r = 0; r < kRowTiles; ++r) {
        a_lo[u][r] = load_weights(w_lo[r] + offset);
        a_hi[u][r] = load_weights(w_hi[r] + offset);
      }
      b[u] = load_activations(x_row + offset, has_token);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < kRowTiles; ++r) mma_tile(acc[r], a_lo[u][r], a_hi[u][r], b[u]);
  }
  for (; tile < tiles; tile += kWarps) {
    const int64_t offset = tile * kTileBytes;
    const uint4 bv = load_activations(x_row + offset, has_token);
#pragma unroll
    for (int r = 0; r < kRowTiles; ++r) mma_tile(acc[r], load_weights(w_lo[r] + offset), load_weights(w_hi[r] + offset), bv);
  }

#pragma unroll
  for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
    for (int i = 0; i < 4; ++i) partial[warp][r][lane][i] = acc[r][i];
  __syncthreads();
  // D fragment of m16n8: d0, d1 = (row g, tokens 2q, 2q+1); d2, d3 = (row g+8, same tokens).
  for (int e = threadIdx.x; e < kRowTiles * 32 * 4; e += blockDim.x) {
    const int r = e / 128, l = (e / 4) % 32, i = e % 4;
    float sum = 0.0f;
#pragma unroll
    for (int v = 0; v < kWarps; ++v) sum += partial[v][r][l][i];
    const int token = 2 * (l % 4) + (i & 1);
    const int64_t row = row_base + 16 * r + l / 4 + 8 * (i >> 1);
    if (token < rows && row < n) y[static_cast<int64_t>(token) * n + row] = sum * x_scales[token] * w_scales[row];
  }
}

template <int kWarps, int kRowTiles, int kUnroll>
void launch_variant(const uint8_t* x, const float* x_scales, int64_t rows, const uint8_t* w, const float* w_scales,
                    int64_t n, int64_t k_padded, float* y, cudaStream_t s) {
  const int64_t rows_per_block = 16 * kRowTiles;
  const int64_t blocks = (n + rows_per_block - 1) / rows_per_block;
  if (blocks > 0x7FFFFFFF) fail("gemv_e4m3: n = {} exceeds one launch", n);
  gemv_e4m3_kernel<kWarps, kRowTiles, kUnroll><<<static_cast<unsigned>(blocks), kWarps * 32, 0, s>>>(
      x, x_scales, static_cast<int>(rows), w, w_scales, n, k_padded, y);
  OCTET_CUDA_LAUNCH_CHECK();
}

using Launcher = void (*)(const uint8_t*, const float*, int64_t, const uint8_t*, const float*, int64_t, int64_t, float*,
                          cudaStream_t);

struct Variant {
  GemvVariant shape;
  Launcher launch;
};

// Weight bytes in flight per warp: unroll · row_tiles · 1 KiB. All fit 128 registers without spills
// on sm_90a (ptxas -v).
constexpr Variant kVariants[] = {
    {{4, 2, 4}, launch_variant<4, 2, 4>},  // the default for large n
    {{8, 1, 4}, launch_variant<8, 1, 4>},  // small n: more warps per row, more blocks
    {{4, 1, 4}, launch_variant<4, 1, 4>},
    {{4, 1, 8}, launch_variant<4, 1, 8>},
    {{8, 2, 2}, launch_variant<8, 2, 2>},
};

int multiprocessors() {
  static const int count = [] {
    int device = 0, value = 0;
    OCTET_CUDA_CHECK(cudaGetDevice(&device));
    OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, device));
    return value;
  }();
  return count;
}

// The default variant keeps every SM busy only when there are enough 32-row blocks; below about two
// per SM (n < 64 · SMs, e.g. the K/V projections), 16-row blocks of 8 warps give twice the blocks and
// twice the warps per row.
int default_variant(int64_t n) { return n >= 64 * static_cast<int64_t>(multiprocessors()) ? 0 : 1; }

void check_arguments(const uint8_t* x, int64_t rows, const uint8_t* w, int64_t n, int64_t k_padded) {
  if (rows < 1 || rows > kGemvMaxRows) fail("gemv_e4m3: {} rows, expected 1 to {}", rows, kGemvMaxRows);
  if (n < 1) fail("gemv_e4m3: n = {}", n);
  if (k_padded < kTileBytes || k_padded % kPadK != 0)
    fail("gemv_e4m3: padded k = {} is not a positive multiple of {}", k_padded, kPadK);
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(w) % 16 != 0)
    fail("gemv_e4m3: operands must be 16-byte aligned");
}

}  // namespace

int gemv_variant_count() { return static_cast<int>(sizeof kVariants / sizeof kVariants[0]); }

GemvVariant gemv_variant(int index) {
  if (index < 0 || index >= gemv_variant_count()) fail("gemv_e4m3: no variant {}", index);
  return kVariants[index].shape;
}

void launch_gemv_e4m3_variant(int index, const uint8_t* x, const float* x_scales, int64_t rows, const uint8_t* w,
                              const float* w_scales, int64_t n, int64_t k_padded, float* y, cudaStream_t s) {
  if (index < 0 || index >= gemv_variant_count()) fail("gemv_e4m3: no variant {}", index);
  check_arguments(x, rows, w, n, k_padded);
  kVariants[index].launch(x, x_scales, rows, w, w_scales, n, k_padded, y, s);
}

void launch_gemv_e4m3(const uint8_t* x, const float* x_scales, int64_t rows, const uint8_t* w, const float* w_scales,
                      int64_t n, int64_t k_padded, float* y, cudaStream_t s) {
  launch_gemv_e4m3_variant(default_variant(n), x, x_scales, rows, w, w_scales, n, k_padded, y, s);
}

}  // namespace octet::backend::cuda
