// FP8 E4M3 skinny GEMM for decode batches of up to 128 tokens: y[m, n] = row_scales[m] ·
// col_scales[n] · Σ_k x[m, k] · w[n, k]. Bytes: n·k weight bytes, streamed once from HBM, plus the
// tokens' rows (rows·k, from L2, once per block) and the float32 outputs; at 64 tokens and k = 4096
// the weights are ~97% of the bytes, so the roofline is n·k / read bandwidth.
//
// Each block owns kTileRows = 128 weight rows (output channels) and a slice of k. Its 8 warps own
// 16 of the rows each and every token (NT tiles of 8 tokens: 4, 8 or 16). The k slice is walked in 64-byte chunks through a ring of
// shared-memory stages filled by cp.async (16-byte copies, kStages − 1 chunks in flight): a stage
// holds the 128 weight rows' chunk and the tokens' chunk (rows past the batch zero-filled), so each
// token byte comes from L2 once per block and feeds all 8 warps — the GEMV's wide tiles re-read it
// per warp (docs/PERFORMANCE.md version 4). The MMA is gemv_fp8.cu's (mma_e4m3.cuh, same k order).
// Rows of a 64-byte stride put the 8 lanes of each 16-byte shared-memory phase (2 rows × 4 chunks)
// on 32 distinct banks.
//
// When the weights' tiles would leave the GPU's block slots mostly idle (k/v: 1024 rows are 8
// tiles), k is split over blockIdx.y; each split writes raw sums to its own plane of a scratch
// buffer and a second kernel adds the planes in split order and applies the scales, so results
// are deterministic (no atomics). Without a split the scales are applied in the epilogue.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/mma_e4m3.cuh"

#include <algorithm>

namespace octet::backend::cuda {
namespace {

constexpr int kTileRows = 128;
constexpr int kWarps = kTileRows / 16;
constexpr int kThreads = kWarps * 32;
constexpr int kChunkBytes = 64;  // k per stage: one mma_step
constexpr int kMaxTokens = 128;
constexpr int kMaxSplits = 16;
// The tensor cores' FP8 accumulation keeps fewer bits than float32, so a long k run in one
// accumulator drifts; every kPromoteChunks chunks (8 MMAs, as the GEMV's warps) the MMA sums are
// added into float32 totals and restarted.
constexpr int kPromoteChunks = 4;
// A split is worth its scratch traffic only while the blocks fill less than this share of the
// GPU's block slots in their last wave.
constexpr double kWaveFillTarget = 0.8;

// NT token tiles of 8 per block (the batch padded up to NT·8). At NT = 16 the MMA sums and the
// totals take 128 registers a thread: one block per SM; below, two.
template <int NT>
struct TileConfig {
  static constexpr int kTokens = NT * 8;
  static constexpr int kBlocksPerSm = NT >= 16 ? 1 : 2;
  static constexpr int kStages = NT >= 16 ? 6 : 8;  // ≤ 96 KiB, within sm_89's 99 KiB per block
  static constexpr int kWeightBytes = kTileRows * kChunkBytes;
  static constexpr int kStageBytes = kWeightBytes + kTokens * kChunkBytes;
  static constexpr int kSharedBytes = kStages * kStageBytes;
};

struct SkinnyArgs {
  const uint8_t* x = nullptr;  // [rows, k] E4M3
  const float* row_scales = nullptr;
  int rows = 0;
  int64_t k = 0;
  int64_t chunks = 0;  // k / kChunkBytes
  int splits = 1;
  GemvGroup group;
  int64_t col_offset[GemvGroup::kMaxMembers] = {};  // of each member in the partial planes' columns
  int64_t total_cols = 0;
  float* partial = nullptr;  // [splits, rows, total_cols] raw sums when splits > 1
};

__host__ __device__ inline int64_t tiles_of(int64_t n) { return (n + kTileRows - 1) / kTileRows; }

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared, bypassing L1; valid == false writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void copy16_async(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
// The same for the weights, always in bounds, asking L2 to fetch the whole 128-byte line: a row's
// next chunk (its other 64 bytes) then comes from L2, and HBM serves 128-byte runs.
__device__ __forceinline__ void copy16_async_line(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void commit_copies() { asm volatile("cp.async.commit_group;\n" ::); }
template <int Pending>
__device__ __forceinline__ void wait_copies() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
}

template <int NT>
__global__ void __launch_bounds__(kThreads, TileConfig<NT>::kBlocksPerSm) skinny_gemm_e4m3_kernel(SkinnyArgs a) {
  await_earlier_kernels();
  using Config = TileConfig<NT>;
  extern __shared__ __align__(16) uint8_t stages[];

  // Which member of the group, and its first row: tiles are dealt out to the members in order.
  int member = 0;
  int64_t first_tile = 0;
  while (member + 1 < a.group.count && blockIdx.x >= first_tile + tiles_of(a.group.n[member])) {
    first_tile += tiles_of(a.group.n[member]);
    ++member;
  }
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) - first_tile) * kTileRows;
  const int64_t n = a.group.n[member];
  const uint8_t* __restrict__ w = a.group.w[member];
  const int split = static_cast<int>(blockIdx.y);
  const int64_t chunk_begin = a.chunks * split / a.splits;
  const int count = static_cast<int>(a.chunks * (split + 1) / a.splits - chunk_begin);  // ≥ 1: splits ≤ chunks

  const int tid = static_cast<int>(threadIdx.x);
  // Weight rows past n repeat the last row (their sums are not written): every load is in bounds.
  auto load_stage = [&](int stage, int64_t chunk) {
    const uint32_t base = shared_address(stages + stage * Config::kStageBytes);
    const int64_t offset = chunk * kChunkBytes;
#pragma unroll
    for (int p = tid; p < kTileRows * 4; p += kThreads) {
      const int r = p / 4, piece = p % 4;
      const int64_t row = row0 + r < n ? row0 + r : n - 1;
      copy16_async_line(base + r * kChunkBytes + piece * 16, w + row * a.k + offset + piece * 16);
    }
    const uint32_t token_base = base + Config::kWeightBytes;
#pragma unroll
    for (int p = tid; p < Config::kTokens * 4; p += kThreads) {
      const int r = p / 4, piece = p % 4;
      const bool present = r < a.rows;
      copy16_async(token_base + r * kChunkBytes + piece * 16, present ? a.x + r * a.k + offset + piece * 16 : a.x, present);
    }
  };

#pragma unroll
  for (int s = 0; s < Config::kStages - 1; ++s) {
    if (s < count) load_stage(s, chunk_begin + s);
    commit_copies();  // empty groups too: the wait below counts groups
  }

  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int token_tiles = (a.rows + 7) / 8;
  float c[NT][4], total[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) c[j][e] = total[j][e] = 0.0f;

#pragma unroll 1
  for (int i = 0; i < count; ++i) {
    wait_copies<Config::kStages - 2>();  // chunk i has landed (this thread's copies) ...
    __syncthreads();                     // ... everyone's, and stage (i − 1) is free to refill
    const int next = i + Config::kStages - 1;
    if (next < count) load_stage(next % Config::kStages, chunk_begin + next);
    commit_copies();
    const uint8_t* stage = stages + (i % Config::kStages) * Config::kStageBytes;
    const uint4 lo = *reinterpret_cast<const uint4*>(stage + (warp * 16 + g) * kChunkBytes + t * 16);
    const uint4 hi = *reinterpret_cast<const uint4*>(stage + (warp * 16 + g + 8) * kChunkBytes + t * 16);
    const uint8_t* tokens = stage + Config::kWeightBytes + g * kChunkBytes + t * 16;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      if (j < token_tiles) {  // warp-uniform: tiles wholly past the batch are skipped
        const uint4 xv = *reinterpret_cast<const uint4*>(tokens + j * 8 * kChunkBytes);
        mma_step(c[j], lo, hi, xv);
      }
    }
    if ((i + 1) % kPromoteChunks == 0 || i + 1 == count) {
#pragma unroll
      for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          total[j][e] += c[j][e];
          c[j][e] = 0.0f;
        }
    }
  }
  wait_copies<0>();

  const float* __restrict__ col_scales = a.group.col_scales[member];
  float* __restrict__ y = a.group.y[member];
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int token = j * 8 + 2 * t + e % 2;
      const int64_t row = row0 + warp * 16 + g + (e / 2) * 8;
      if (token >= a.rows || row >= n) continue;
      if (a.splits == 1) y[token * n + row] = total[j][e] * a.row_scales[token] * col_scales[row];
      else a.partial[(static_cast<int64_t>(split) * a.rows + token) * a.total_cols + a.col_offset[member] + row] = total[j][e];
    }
}

// One thread per (token, column of the group): the split planes in order, then the scales.
__global__ void skinny_gemm_reduce_kernel(SkinnyArgs a) {
  await_earlier_kernels();
  const int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (index >= a.rows * a.total_cols) return;
  const int64_t token = index / a.total_cols, col = index % a.total_cols;
  float sum = 0.0f;
  for (int s = 0; s < a.splits; ++s) sum += a.partial[(static_cast<int64_t>(s) * a.rows + token) * a.total_cols + col];
  int member = 0;
  while (member + 1 < a.group.count && col >= a.col_offset[member + 1]) ++member;
  const int64_t row = col - a.col_offset[member];
  a.group.y[member][token * a.group.n[member] + row] = sum * a.row_scales[token] * a.group.col_scales[member][row];
}

// Blocks of this instance resident per SM (its shared memory set once), times the SMs.
template <int NT>
int block_slots() {
  static const int slots = [] {
    constexpr int bytes = TileConfig<NT>::kSharedBytes;
    OCTET_CUDA_CHECK(cudaFuncSetAttribute(skinny_gemm_e4m3_kernel<NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    int per_sm = 0, device = 0, sms = 0;
    OCTET_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, skinny_gemm_e4m3_kernel<NT>, kThreads, bytes));
    OCTET_CUDA_CHECK(cudaGetDevice(&device));
    OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    if (per_sm < 1) fail("skinny_gemm_e4m3: {} bytes of shared memory per block do not fit this GPU", bytes);
    return per_sm * sms;
  }();
  return slots;
}

int token_tiles_instance(int64_t rows) { return rows <= 32 ? 4 : rows <= 64 ? 8 : 16; }

int slots_for(int64_t rows) {
  switch (token_tiles_instance(rows)) {
    case 4: return block_slots<4>();
    case 8: return block_slots<8>();
    default: return block_slots<16>();
  }
}

int64_t group_tiles(const GemvGroup& group) {
  int64_t tiles = 0;
  for (int i = 0; i < group.count; ++i) tiles += tiles_of(group.n[i]);
  return tiles;
}

int64_t group_cols(const GemvGroup& group) {
  int64_t cols = 0;
  for (int i = 0; i < group.count; ++i) cols += group.n[i];
  return cols;
}

// The fewest splits whose last wave fills kWaveFillTarget of the slots, else the best-filling.
int choose_splits(int64_t tiles, int64_t chunks, int slots) {
  int best = 1;
  double best_fill = 0.0;
  for (int s = 1; s <= kMaxSplits && s <= chunks; ++s) {
    const int64_t blocks = tiles * s, waves = (blocks + slots - 1) / slots;
    const double fill = static_cast<double>(blocks) / static_cast<double>(waves * slots);
    if (fill >= kWaveFillTarget) return s;
    if (fill > best_fill) best = s, best_fill = fill;
  }
  return best;
}

void check_group(int64_t rows, const GemvGroup& group, int64_t k) {
  if (!skinny_gemm_e4m3_fits(rows, k)) fail("skinny_gemm_e4m3: {} rows of k = {} do not fit (1–128 rows, k a multiple of 64)", rows, k);
  if (group.count < 1 || group.count > GemvGroup::kMaxMembers) fail("skinny_gemm_e4m3: a group of {} weights", group.count);
}

template <int NT>
void launch_tiles(const SkinnyArgs& args, int64_t tiles, cudaStream_t s) {
  block_slots<NT>();  // sets the shared-memory attribute
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(args.splits));
  launch_kernel(skinny_gemm_e4m3_kernel<NT>, LaunchShape{grid, dim3(kThreads), TileConfig<NT>::kSharedBytes}, s, args);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace

bool skinny_gemm_e4m3_fits(int64_t rows, int64_t k) { return rows >= 1 && rows <= kMaxTokens && k > 0 && k % kChunkBytes == 0; }

int skinny_gemm_e4m3_splits(int64_t rows, const GemvGroup& group, int64_t k) {
  check_group(rows, group, k);
  return choose_splits(group_tiles(group), k / kChunkBytes, slots_for(rows));
}

size_t skinny_gemm_e4m3_scratch_floats(int64_t rows, const GemvGroup& group, int64_t k) {
  const int splits = skinny_gemm_e4m3_splits(rows, group, k);
  return splits > 1 ? static_cast<size_t>(splits * rows * group_cols(group)) : 0;
}

void launch_skinny_gemm_e4m3_group(const uint8_t* x, const float* row_scales, int64_t rows, const GemvGroup& group,
                                   int64_t k, float* scratch, size_t scratch_floats, cudaStream_t s) {
  check_group(rows, group, k);
  const auto misaligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 != 0; };
  if (misaligned(x)) fail("skinny_gemm_e4m3: the activation codes are not 16-byte aligned");
  SkinnyArgs args;
  args.x = x;
  args.row_scales = row_scales;
  args.rows = static_cast<int>(rows);
  args.k = k;
  args.chunks = k / kChunkBytes;
  args.group = group;
  for (int i = 0; i < group.count; ++i) {
    if (misaligned(group.w[i])) fail("skinny_gemm_e4m3: weight {} of the group is not 16-byte aligned", i);
    args.col_offset[i] = args.total_cols;
    args.total_cols += group.n[i];
  }
  const int64_t tiles = group_tiles(group);
  if (tiles == 0) return;
  args.splits = choose_splits(tiles, args.chunks, slots_for(rows));
  if (args.splits > 1) {
    const size_t needed = static_cast<size_t>(args.splits * rows * args.total_cols);
    if (scratch == nullptr || scratch_floats < needed)
      fail("skinny_gemm_e4m3: {} splits need {} scratch floats, {} given", args.splits, needed, scratch_floats);
    args.partial = scratch;
  }
  switch (token_tiles_instance(rows)) {
    case 4: launch_tiles<4>(args, tiles, s); break;
    case 8: launch_tiles<8>(args, tiles, s); break;
    default: launch_tiles<16>(args, tiles, s); break;
  }
  if (args.splits > 1) {
    const int64_t outputs = rows * args.total_cols;
    const LaunchShape shape{dim3(static_cast<unsigned>((outputs + 255) / 256)), dim3(256)};
    launch_kernel(skinny_gemm_reduce_kernel, shape, s, args);
    OCTET_CUDA_LAUNCH_CHECK();
  }
}

}  // namespace octet::backend::cuda
