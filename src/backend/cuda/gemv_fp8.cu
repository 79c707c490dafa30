// FP8 E4M3 GEMV / skinny GEMM for decode (rows ≤ 16). Bytes: n·k weight bytes (read once) + rows·k
// activation bytes (L2-resident) + rows·n·4 output bytes; FLOPs: 2·rows·n·k. At rows = 1 the weight
// bytes dominate, so the roofline is n·k / read bandwidth (e.g. 28672×8192: 235 MB, ≈ 78 µs at 3 TB/s).
//
// Two kernels. gemv_e4m3_kernel (CUDA cores, 1–8 rows): one warp per output row, each lane streams
// 16-byte chunks of the weight row in rounds of 4, or of 2 at k <= 4096 (the first before the wait
// for the previous kernel), widens E4M3 pairs to half2 in hardware and accumulates in float32
// (products of E4M3 values are exact in float32; half accumulation would overflow at 448²).
// gemv_e4m3_mma_kernel (tensor cores, k a multiple of 64, up to 16 rows): see its comment. Which one
// a shape takes is use_tensor_cores' choice (OCTET_CUDA_TENSOR_GEMV); whether the backend gives a
// shape to the GEMV at all is gemv_e4m3_preferred's.
//
// A group of weights sharing the input (q/k/v, gate/up) runs as one launch: blocks are dealt out to
// the weights in order, so small matrices such as k and v (1024 rows: 128 blocks alone, fewer than
// the SMs) ride along with q.
//
// The one-row alternatives once behind OCTET_CUDA_GEMV_PREFETCH (a cp.async ring in shared memory,
// rounds of 8 chunks, two weight rows a warp) were all slower in the real step and are removed; their
// figures are in docs/PERFORMANCE.md version 7.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/integer_setting.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/mma_e4m3.cuh"

#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace octet::backend::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kUnroll = 4;

// Launch bounds' blocks a SM, within what the SM holds: sm_89 holds 1536 threads (6 blocks of 256), sm_90 2048.
constexpr int resident_blocks_wanted(int blocks) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  return blocks > 6 ? 6 : blocks;
#else
  return blocks;
#endif
}

__device__ __forceinline__ float2 widen_pair(uint16_t pair) {
  __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair), __NV_E4M3);
  return __half22float2(*reinterpret_cast<__half2*>(&raw));
}

// acc += dot of 16 E4M3 weights with 16 E4M3 activations.
__device__ __forceinline__ float dot16(const uint4& w, const uint4& x) {
  const uint32_t wv[4] = {w.x, w.y, w.z, w.w};
  const uint32_t xv[4] = {x.x, x.y, x.z, x.w};
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 w0 = widen_pair(static_cast<uint16_t>(wv[i] & 0xFFFF)), w1 = widen_pair(static_cast<uint16_t>(wv[i] >> 16));
    const float2 x0 = widen_pair(static_cast<uint16_t>(xv[i] & 0xFFFF)), x1 = widen_pair(static_cast<uint16_t>(xv[i] >> 16));
    sum = fmaf(w0.x, x0.x, sum);
    sum = fmaf(w0.y, x0.y, sum);
    sum = fmaf(w1.x, x1.x, sum);
    sum = fmaf(w1.y, x1.y, sum);
  }
  return sum;
}

// Which weight of the group this block works on, and its first row there: blocks are dealt out to
// the members in order, ceil(n / rows_per_block) each.
__device__ __forceinline__ int group_member(const GemvGroup& group, int64_t rows_per_block, int64_t& first_row) {
  int member = 0;
  int64_t first_block = 0;
  while (member + 1 < group.count && blockIdx.x >= first_block + (group.n[member] + rows_per_block - 1) / rows_per_block) {
    first_block += (group.n[member] + rows_per_block - 1) / rows_per_block;
    ++member;
  }
  first_row = (static_cast<int64_t>(blockIdx.x) - first_block) * rows_per_block;
  return member;
}

// Unroll: chunks a lane loads per round; MinBlocks: resident blocks a SM the registers must allow (0
// leaves the compiler free). Every instance adds the same products in the same order (a lane's chunks
// lane, lane + 32, … one after the other): the same bits.
template <int Rows, int Unroll = kUnroll, int MinBlocks = 0>
__global__ void __launch_bounds__(kWarpsPerBlock * 32, resident_blocks_wanted(MinBlocks))
gemv_e4m3_kernel(const uint8_t* __restrict__ x, const float* __restrict__ row_scales, GemvGroup group, int64_t k) {
  const int lane = threadIdx.x % 32;
  int64_t first_row = 0;
  const int member = group_member(group, kWarpsPerBlock, first_row);
  const int64_t n = group.n[member];
  const uint8_t* __restrict__ w = group.w[member];
  const float* __restrict__ col_scales = group.col_scales[member];
  float* __restrict__ y = group.y[member];
  const int64_t row = first_row + threadIdx.x / 32;
  const uint4* weights = reinterpret_cast<const uint4*>(w + row * k);
  const int64_t chunks = k / 16;
  float acc[Rows];
#pragma unroll
  for (int m = 0; m < Rows; ++m) acc[m] = 0.0f;
  auto full_round = [&](int64_t from) { return from + 32 * (Unroll - 1) < chunks; };
  auto load_round = [&](int64_t from, uint4* into) {
#pragma unroll
    for (int u = 0; u < Unroll; ++u) into[u] = __ldcs(weights + from + 32 * u);  // streamed once: do not keep in L2
  };

  // The first pass's weight chunks are loaded before waiting for the kernel that wrote x (launch.cuh):
  // weights do not change during a step, and their DRAM latency then overlaps that kernel's tail.
  // The loop's first iteration uses them: the same sums in the same order.
  int64_t c = lane;
  uint4 wv[Unroll];
  bool prefetched = row < n && full_round(c);
  if (prefetched) load_round(c, wv);
  await_earlier_kernels();
  if (row >= n) return;
  for (; full_round(c); c += 32 * Unroll) {
    if (!prefetched) load_round(c, wv);
    prefetched = false;
#pragma unroll
    for (int u = 0; u < Unroll; ++u)
#pragma unroll
      for (int m = 0; m < Rows; ++m)
        acc[m] += dot16(wv[u], __ldg(reinterpret_cast<const uint4*>(x + m * k) + c + 32 * u));
  }
  for (; c < chunks; c += 32) {
    const uint4 wv = __ldcs(weights + c);
#pragma unroll
    for (int m = 0; m < Rows; ++m) acc[m] += dot16(wv, __ldg(reinterpret_cast<const uint4*>(x + m * k) + c));
  }
#pragma unroll
  for (int m = 0; m < Rows; ++m) {
    float v = acc[m];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xFFFFFFFF, v, offset);
    if (lane == 0) y[m * n + row] = v * row_scales[m] * col_scales[row];
  }
}

// Tensor-core path (k a multiple of 64, up to 16 tokens): mma.sync m16n8k32 E4M3 multiplies 16
// weight rows by 8 tokens (absent tokens are zeros), so the E4M3 → float widening that bounds the
// kernel above (about 4 instructions per weight byte at one token, 22 at eight) disappears. A warp
// owns MT·16 weight rows and NT·8 tokens; the block's 8 warps split k and meet in shared memory.
// The order over k does not matter, so each lane loads 16 contiguous bytes of its rows (and of its
// tokens' rows) and the k positions are permuted identically in A and B: lane (group g, thread t)
// holds bytes t·16 … t·16+15 of a 64-byte step, fed to two MMAs as logical columns
// {t·4…t·4+3, 16+t·4…} of each. Tokens are re-read from L2 once per block; MT = 2 would halve that
// traffic per weight byte (measured for 32 and 64 tokens, slower than cuBLASLt there, not used).
constexpr int kMmaWarps = 8;

// MinBlocks: resident blocks a SM the registers must allow (launch bounds); 1 leaves the compiler free.
template <int MT, int NT, int U, int MinBlocks>
__global__ void __launch_bounds__(kMmaWarps * 32, MinBlocks)
gemv_e4m3_mma_kernel(const uint8_t* __restrict__ x, const float* __restrict__ row_scales, int rows, GemvGroup group,
                     int64_t k) {
  constexpr int kRows = MT * 16, kTokens = NT * 8;
  // Warps 4..7 hand their sums to warps 0..3, which add and keep them: half the shared memory.
  __shared__ float partial[kMmaWarps / 2][kRows][kTokens + 1];  // +1: conflict-free column reads
  int64_t row0 = 0;
  const int member = group_member(group, kRows, row0);
  const int64_t n = group.n[member];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  // Rows past n repeat the last row (their results are not written), so every load is in bounds.
  const uint8_t* w_lo[MT];
  const uint8_t* w_hi[MT];
#pragma unroll
  for (int i = 0; i < MT; ++i) {
    w_lo[i] = group.w[member] + min(row0 + i * 16 + g, n - 1) * k + t * 16;
    w_hi[i] = group.w[member] + min(row0 + i * 16 + g + 8, n - 1) * k + t * 16;
  }
  // Token j·8 + g of tile j; tokens past `rows` read as zeros.
  const uint8_t* xr = x + g * k + t * 16;
  const int64_t tile_stride = 8 * k;
  auto has_token = [&](int j) { return j * 8 + g < rows; };
  const uint4 zero = make_uint4(0, 0, 0, 0);
  float c[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j) c[i][j][0] = c[i][j][1] = c[i][j][2] = c[i][j][3] = 0.0f;

  const int64_t steps = k / 64;
  int64_t step = warp;
  // No weight prefetch before the wait here (unlike gemv_e4m3_kernel): with one (and the session's
  // other changes), Llama-3.3-70B decode b1, whose every GEMV is this kernel, measured 25.9 ms a step
  // on the H200 against 21.4 before (2026-12-01); this loop is the one measured at 21.4.
  await_earlier_kernels();
#pragma unroll 1
  for (; step + kMmaWarps * (U - 1) < steps; step += kMmaWarps * U) {
    uint4 lo[U][MT], hi[U][MT], xv[U][NT];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t offset = (step + u * kMmaWarps) * 64;
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        lo[u][i] = __ldcs(reinterpret_cast<const uint4*>(w_lo[i] + offset));  // streamed once: do not keep in L2
        hi[u][i] = __ldcs(reinterpret_cast<const uint4*>(w_hi[i] + offset));
      }
#pragma unroll
      for (int j = 0; j < NT; ++j)
        xv[u][j] = has_token(j) ? __ldg(reinterpret_cast<const uint4*>(xr + j * tile_stride + offset)) : zero;
    }
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) mma_step(c[i][j], lo[u][i], hi[u][i], xv[u][j]);
  }
#pragma unroll 1
  for (; step < steps; step += kMmaWarps) {
    const int64_t offset = step * 64;
    uint4 lo[MT], hi[MT];
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      lo[i] = __ldcs(reinterpret_cast<const uint4*>(w_lo[i] + offset));
      hi[i] = __ldcs(reinterpret_cast<const uint4*>(w_hi[i] + offset));
    }
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const uint4 xv = has_token(j) ? __ldg(reinterpret_cast<const uint4*>(xr + j * tile_stride + offset)) : zero;
#pragma unroll
      for (int i = 0; i < MT; ++i) mma_step(c[i][j], lo[i], hi[i], xv);
    }
  }
  // Accumulator layout of m16n8: c0, c1 are (row g, tokens 2t, 2t+1); c2, c3 the same for row g + 8.
  float(*mine)[kTokens + 1] = partial[warp % (kMmaWarps / 2)];
  auto deposit = [&](bool add) {
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float& slot = mine[i * 16 + g + (e / 2) * 8][j * 8 + 2 * t + e % 2];
          slot = add ? slot + c[i][j][e] : c[i][j][e];
        }
  };
  if (warp >= kMmaWarps / 2) deposit(false);
  __syncthreads();
  if (warp < kMmaWarps / 2) deposit(true);
  __syncthreads();
  // Consecutive threads take consecutive rows of one token: coalesced writes of y[token, row].
  for (int index = threadIdx.x; index < kRows * kTokens; index += blockDim.x) {
    const int r = index % kRows, token = index / kRows;
    const int64_t row = row0 + r;
    if (row < n && token < rows) {
      const float sum = (partial[0][r][token] + partial[1][r][token]) + (partial[2][r][token] + partial[3][r][token]);
      group.y[member][token * n + row] = sum * row_scales[token] * group.col_scales[member][row];
    }
  }
}

template <int MT, int NT, int U, int MinBlocks = 1>
void launch_mma(const uint8_t* x, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k, cudaStream_t s) {
  int64_t blocks = 0;
  for (int i = 0; i < group.count; ++i) blocks += (group.n[i] + MT * 16 - 1) / (MT * 16);
  if (blocks == 0) return;
  const LaunchShape shape{dim3(static_cast<unsigned>(blocks)), dim3(kMmaWarps * 32)};
  launch_kernel(gemv_e4m3_mma_kernel<MT, NT, U, MinBlocks>, shape, s, x, row_scales, static_cast<int>(rows), group, k);
  OCTET_CUDA_LAUNCH_CHECK();
}

__global__ void matmul_e4m3_simple_kernel(const uint8_t* x, const float* row_scales, int64_t rows, const uint8_t* w,
                                          const float* col_scales, int64_t n, int64_t k, float* y) {
  await_earlier_kernels();
  const int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (index >= rows * n) return;
  const int64_t m = index / n, col = index % n;
  float sum = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    __nv_fp8_e4m3 xa, wb;
    xa.__x = x[m * k + i];
    wb.__x = w[col * k + i];
    sum = fmaf(static_cast<float>(xa), static_cast<float>(wb), sum);
  }
  y[m * n + col] = sum * row_scales[m] * col_scales[col];
}

}  // namespace

namespace {
// OCTET_CUDA_TENSOR_GEMV: unset, tensor cores for 2–16 rows and the CUDA-core kernel for one row
// (faster there on Llama-3.1-8B: 3.788 vs 4.090 ms per decode step on the H200, docs/PERFORMANCE.md
// version 4: the tensor-core blocks own only 16 weight rows and reduce 8 k-splits through shared
// memory, which one token's work does not amortise); "all": tensor cores for one row too (the
// previous dispatch, for comparison); "0": the CUDA-core kernel for every shape.
enum class TensorGemv { off, from_two_rows, all };
// One row of a large matrix (n and k both >= 8192) goes to the tensor cores as well. H200, 2026-12-01:
// on Llama-3.3-70B (every linear that large) they were faster at batch 1 (21.05 against 21.49 ms per
// step); on Llama-3.1-8B slower for all linears (3.73 against 3.41 ms) and for its down projection
// (4096 × 14336) alone (3.60 against 3.41 ms, with k >= 8192 as the only condition).
constexpr int64_t kTensorCoresForOneRowFrom = 8192;

// Read at each call (a getenv, recorded steps replay without it), so a test can set it for a scope.
TensorGemv tensor_core_gemv() {
  const char* value = std::getenv("OCTET_CUDA_TENSOR_GEMV");
  if (value == nullptr) return TensorGemv::from_two_rows;
  if (std::string_view(value) == "0") return TensorGemv::off;
  if (std::string_view(value) == "all") return TensorGemv::all;
  return TensorGemv::from_two_rows;
}

// The 1–8 token tensor-core kernel is also compiled for five resident blocks a SM (48 registers, a few
// bytes spilled, against 54 and four), so a grid of 640 blocks — Llama-3.3-70B's q/k/v at batch 1, 2.7
// TB/s in version 5's profile against 3.6–3.9 for its other GEMVs — runs in one wave on 132 SMs instead
// of 1.2. H200, 2026-12-01, the same binary: 70B b1 20.242 / 20.235 ms a step against 20.482 / 20.493
// (two calls), but 70B b8 23.062 against 22.190 ms; 8B b2 / b4 / b8 3.236 / 3.340 / 3.568 against 3.258
// / 3.398 / 3.711. Since version 8 no Llama-3.3-70B weight takes the GEMV (gemv_e4m3_preferred), so the
// five-block build is the default for 1–8 rows, where it was faster on Llama-3.1-8B.
// OCTET_CUDA_TENSOR_GEMV_BLOCKS (read at each launch: a recorded step keeps the kernel it was recorded
// with, and tests can set it): "1" the compiler's build for every row (for comparison).
bool five_blocks_a_sm() {
  const char* value = std::getenv("OCTET_CUDA_TENSOR_GEMV_BLOCKS");
  return value == nullptr || std::string_view(value) != "1";
}

// The one-row CUDA-core kernel's rounds. By default rows of k <= 4096 (Llama-3.1-8B's q/k/v, o and
// gate/up) take rounds of 2 chunks a lane at 8 blocks a SM (32 registers: the most warps, q/k/v's 768
// blocks in one wave) and longer rows rounds of 4 (48 registers, 5 blocks): on the H200 at 8B b1,
// 2.858–2.859 ms a step against 2.906–2.908 with rounds of 4 everywhere and 2.883–2.884 with rounds of 2
// everywhere (docs/PERFORMANCE.md version 14). OCTET_CUDA_GEMV_ROUNDS (read at each launch, for
// measuring; a recorded step keeps the kernel it was recorded with): "4" rounds of 4 everywhere, "2x8"
// rounds of 2 everywhere.
constexpr int64_t kTwoChunkRoundsUpToK = 4096;
enum class OneRowRounds { two_at_eight, four };
OneRowRounds one_row_rounds(int64_t k) {
  const char* value = std::getenv("OCTET_CUDA_GEMV_ROUNDS");
  if (value == nullptr || *value == '\0')
    return k <= kTwoChunkRoundsUpToK ? OneRowRounds::two_at_eight : OneRowRounds::four;
  const std::string_view v(value);
  if (v == "4") return OneRowRounds::four;
  if (v == "2x8") return OneRowRounds::two_at_eight;
  fail("OCTET_CUDA_GEMV_ROUNDS is '{}', expected 4 or 2x8 (unset: by k)", v);
}

bool use_tensor_cores(int64_t rows, int64_t n, int64_t k) {
  if (k % 64 != 0) return false;
  switch (tensor_core_gemv()) {
    case TensorGemv::off: return false;
    case TensorGemv::from_two_rows: return rows >= 2 || (n >= kTensorCoresForOneRowFrom && k >= kTensorCoresForOneRowFrom);
    case TensorGemv::all: return true;
  }
  return false;
}
}  // namespace

// Up to 16 tokens on tensor cores (8 on CUDA cores): the kernels' reach. Which shapes the backend
// actually gives them is gemv_e4m3_preferred's choice.
bool gemv_e4m3_fits(int64_t rows, int64_t k) {
  if (rows > 16) return false;
  if (k % 64 == 0 && tensor_core_gemv() != TensorGemv::off) return true;
  return k % 16 == 0 && rows <= 8;
}

namespace {
// Measured on the H200, 2026-12-01 (docs/PERFORMANCE.md version 8), ms a decode step, GEMV against
// cuBLASLt for the same rows: Llama-3.1-8B b1 2.978 / 3.322, b2 3.251 / 3.368, b4 3.378 / 3.552, b8
// 3.658 / 3.605, b12 4.504 / 3.908, b16 4.746 / 4.024; Llama-3.3-70B (every weight n, k >= 8192) b1
// 20.145 / 19.559, b2 20.481 / 20.162, b8 21.808 / 21.044, b16 26.040 / 21.446. So the GEMV takes up
// to 8 rows of weights below that size, and none of the large ones: cuBLASLt streams them faster.
constexpr int64_t kPreferredRows = 8;
constexpr int64_t kCublasLtFromN = 8192;
constexpr int64_t kCublasLtFromK = 8192;

// Read at each call (a recorded step keeps the choice it was recorded with), for measuring the bounds:
// OCTET_CUDA_GEMV_MAX_ROWS=R (0–16) the row bound; OCTET_CUDA_GEMV_LARGE=N,K where the large weights
// start, =0 none is large.
int64_t preferred_rows() { return integer_setting("OCTET_CUDA_GEMV_MAX_ROWS", kPreferredRows, 0, 16, "a row count"); }
bool large_weight(int64_t n, int64_t k) {
  int64_t from_n = kCublasLtFromN, from_k = kCublasLtFromK;
  if (const char* value = std::getenv("OCTET_CUDA_GEMV_LARGE")) {
    if (std::string_view(value) == "0") return false;
    long long parsed_n = 0, parsed_k = 0;
    char rest = 0;
    if (std::sscanf(value, "%lld,%lld%c", &parsed_n, &parsed_k, &rest) != 2 || parsed_n <= 0 || parsed_k <= 0)
      fail("OCTET_CUDA_GEMV_LARGE is '{}', expected 0 or N,K (weights of n >= N and k >= K rows are large)", value);
    from_n = parsed_n;
    from_k = parsed_k;
  }
  return n >= from_n && k >= from_k;
}
}  // namespace

bool gemv_e4m3_preferred(int64_t rows, int64_t n, int64_t k) {
  return gemv_e4m3_fits(rows, k) && rows <= preferred_rows() && !large_weight(n, k);
}

void launch_gemv_e4m3(const uint8_t* x, const float* row_scales, int64_t rows, const uint8_t* w, const float* col_scales,
                      int64_t n, int64_t k, float* y, cudaStream_t s) {
  GemvGroup group;
  group.count = 1;
  group.w[0] = w;
  group.col_scales[0] = col_scales;
  group.y[0] = y;
  group.n[0] = n;
  launch_gemv_e4m3_group(x, row_scales, rows, group, k, s);
}

void launch_gemv_e4m3_group(const uint8_t* x, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k,
                            cudaStream_t s) {
  if (rows < 1 || !gemv_e4m3_fits(rows, k)) fail("gemv_e4m3: {} rows of k = {} do not fit the GEMV", rows, k);
  if (group.count < 1 || group.count > GemvGroup::kMaxMembers) fail("gemv_e4m3: a group of {} weights", group.count);
  int64_t group_n = 0;  // the launch's matrix: the members' rows together
  for (int i = 0; i < group.count; ++i) group_n += group.n[i];
  if (use_tensor_cores(rows, group_n, k)) {
    if (rows <= 8 && five_blocks_a_sm()) launch_mma<1, 1, 4, 5>(x, row_scales, rows, group, k, s);
    else if (rows <= 8) launch_mma<1, 1, 4>(x, row_scales, rows, group, k, s);
    else launch_mma<1, 2, 4>(x, row_scales, rows, group, k, s);
    return;
  }
  int64_t total_blocks = 0;
  for (int i = 0; i < group.count; ++i) total_blocks += (group.n[i] + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (total_blocks == 0) return;
  const LaunchShape shape{dim3(static_cast<unsigned>(total_blocks)), dim3(kWarpsPerBlock * 32)};
  const auto run = [&](auto kernel) { launch_kernel(kernel, shape, s, x, row_scales, group, k); };
  switch (rows) {
    case 1:
      if (one_row_rounds(k) == OneRowRounds::two_at_eight) run(gemv_e4m3_kernel<1, 2, 8>);
      else run(gemv_e4m3_kernel<1>);
      break;
    case 2: run(gemv_e4m3_kernel<2>); break;
    case 3: run(gemv_e4m3_kernel<3>); break;
    case 4: run(gemv_e4m3_kernel<4>); break;
    case 5: run(gemv_e4m3_kernel<5>); break;
    case 6: run(gemv_e4m3_kernel<6>); break;
    case 7: run(gemv_e4m3_kernel<7>); break;
    default: run(gemv_e4m3_kernel<8>); break;
  }
  OCTET_CUDA_LAUNCH_CHECK();
}

void launch_matmul_e4m3_simple(const uint8_t* x, const float* row_scales, int64_t rows, const uint8_t* w,
                               const float* col_scales, int64_t n, int64_t k, float* y, cudaStream_t s) {
  if (rows * n == 0) return;
  const LaunchShape shape{dim3(static_cast<unsigned>((rows * n + 255) / 256)), dim3(256)};
  launch_kernel(matmul_e4m3_simple_kernel, shape, s, x, row_scales, rows, w, col_scales, n, k, y);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace octet::backend::cuda
