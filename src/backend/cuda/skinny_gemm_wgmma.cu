// FP8 E4M3 skinny GEMM on sm_90's warpgroup MMAs (wgmma) for decode batches of up to 128 tokens:
// y[m, n] = row_scales[m] · col_scales[n] · Σ_k x[m, k] · w[n, k], the contract of skinny_gemm_fp8.cu.
// There the FP8 mma.sync, which sm_90 runs as FP16 MMAs after widening both operands (cuobjdump:
// F2FP + HMMA.16816, no QMMA), caps the product near 540 TFLOP/s — 128 FLOP a weight byte at 64
// tokens, so the weights stream at 2–2.5 TB/s at best. wgmma takes the FP8 codes as they are, from
// shared memory, at 1387 TFLOP/s measured.
//
// A block (one a SM, persistent) is a producer warp and two consumer warpgroups. The weight tiles
// are 128 rows (output channels) of one member of the group; the work is the sequence of (tile,
// 128-byte k chunk) units, tile-major, split evenly over the blocks ("stream-K": no tail wave, one
// pipeline ramp a block). The producer's lane 0 has the copy engine bring each unit's weight tile
// (128 rows × 128 bytes) and the tokens' chunk (kTokens rows × 128 bytes, rows past the batch zero)
// into a ring of stages, 128-byte swizzled; consumer warpgroup c runs m64nNk32 on weight rows
// 64c..64c+63 against all the tokens, four k steps a chunk into a fresh accumulator that is then
// added to float32 totals (the tensor cores' FP8 sums keep fewer bits than float32 over long runs).
// A block's run of units covers parts of at most a few tiles; a tile covered by one block is
// written at once, else each block leaves its part's raw sums in scratch and the last to finish
// (a counter a tile) adds the parts in block order — the same bits whoever finishes last — and
// applies the scales.
#include "backend/cuda/async_copy.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/wgmma_fp8.cuh"

#include <algorithm>

namespace octet::backend::cuda {
namespace {

constexpr int kTileRows = 128;      // weight rows a tile: two warpgroups of m64
constexpr int kChunkBytes = 128;    // k a unit: the 128-byte swizzle's row, four k32 steps
constexpr int kConsumers = 2;       // warpgroups
constexpr int kConsumerThreads = kConsumers * 128;
constexpr int kThreads = kConsumerThreads + 32;  // and the producer warp
constexpr int kMaxTokens = 128;

template <int N>  // tokens a block computes (the wgmma's n): 8 to 128
struct WgmmaConfig {
  static constexpr int kWeightBytes = kTileRows * kChunkBytes;   // 16 KiB
  static constexpr int kTokenBytes = N * kChunkBytes;            // 8 or 16 KiB
  static constexpr int kStageBytes = kWeightBytes + kTokenBytes;
  static constexpr int kStages = std::min(12, 192 * 1024 / kStageBytes);  // 192 KiB at most
  static constexpr int kSharedBytes = kStages * kStageBytes + 1024;  // + the 1024-byte alignment's slack
  static constexpr int kAccumulators = N / 2;                    // floats a thread: m64nN over 128 threads
};

struct WgmmaArgs {
  const float* row_scales = nullptr;
  int rows = 0;
  int chunks = 0;                       // k / kChunkBytes
  int count = 0;                        // members
  int tile_begin[GemvGroup::kMaxMembers + 1] = {};  // the members' first tiles; [count] = all tiles
  const float* col_scales[GemvGroup::kMaxMembers] = {};
  float* y[GemvGroup::kMaxMembers] = {};
  int64_t n[GemvGroup::kMaxMembers] = {};
  int64_t units = 0;                    // tiles · chunks
  int max_parts = 0;                    // blocks a tile's units span, at most
  float* partial = nullptr;             // [tile][part][accumulator][consumer thread]
  uint32_t* counters = nullptr;         // a tile's parts done; left zero
};
struct WeightMaps {
  CUtensorMap w[GemvGroup::kMaxMembers];
};

// The block whose run holds unit u: runs are [floor(b·U/G), floor((b+1)·U/G)).
__device__ __forceinline__ int block_of(int64_t u, int64_t units, int blocks) {
  return static_cast<int>(((u + 1) * blocks + units - 1) / units - 1);
}

// The consumers' named barrier (the producer warp never joins it).
__device__ __forceinline__ void consumers_sync() {
  asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumerThreads) : "memory");
}

template <int N>
__global__ void __launch_bounds__(kThreads, 1)
wgmma_skinny_gemm_kernel(const WgmmaArgs a, const __grid_constant__ WeightMaps maps, const __grid_constant__ CUtensorMap x_map) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
  __trap();  // wgmma needs the 90a build (wgmma_skinny_gemm_fits admits sm_90 only)
#endif
  using Config = WgmmaConfig<N>;
  constexpr int kStages = Config::kStages;
  extern __shared__ uint8_t dynamic_shared[];
  __shared__ unsigned long long full[kStages], empty[kStages];
  __shared__ bool last_part;
  // Stages 1024-byte aligned (the swizzle's period): the weight tile, then the tokens' chunk.
  uint8_t* const stages = swizzle_aligned(dynamic_shared);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int blocks = gridDim.x;
  const int64_t first_unit = a.units * blockIdx.x / blocks, end_unit = a.units * (blockIdx.x + 1) / blocks;

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(&full[s], 1);
      mbarrier_init(&empty[s], kConsumers * 4);  // every consumer warp's lane 0
    }
    mbarrier_init_fence();
  }
  __syncthreads();

  if (warp == kConsumers * 4) {  // the producer
    // Unit u's weight tile, and then (once the kernel before has written them) its tokens' chunk.
    auto copy_weights = [&](int64_t u, int s) {
      const int tile = static_cast<int>(u / a.chunks), chunk = static_cast<int>(u % a.chunks);
      const int member = tile_member(a.tile_begin, tile);
      mbarrier_expect_bytes(&full[s], Config::kStageBytes);  // rows past the end count too (zeros)
      tensor_copy_2d(shared_address(stages + s * Config::kStageBytes), &maps.w[member], chunk * kChunkBytes,
                     (tile - a.tile_begin[member]) * kTileRows, &full[s]);
    };
    auto copy_tokens = [&](int64_t u, int s) {
      tensor_copy_2d(shared_address(stages + s * Config::kStageBytes + Config::kWeightBytes), &x_map,
                     static_cast<int>(u % a.chunks) * kChunkBytes, 0, &full[s]);
    };
    // The weights are constant through the step: the first stages' tiles are asked for before the
    // wait, so the pipeline fills behind the previous kernel's tail (as gemv_fp8.cu's first chunks).
    const int64_t early_end = min(end_unit, first_unit + kStages);
    if (lane == 0)
      for (int64_t u = first_unit; u < early_end; ++u) copy_weights(u, static_cast<int>(u - first_unit));
    await_earlier_kernels();
    if (lane == 0) {
      for (int64_t u = first_unit; u < early_end; ++u) copy_tokens(u, static_cast<int>(u - first_unit));
      for (int64_t u = early_end; u < end_unit; ++u) {
        const int step = static_cast<int>(u - first_unit), s = step % kStages;
        mbarrier_wait(&empty[s], ((step / kStages) - 1) & 1);
        copy_weights(u, s);
        copy_tokens(u, s);
      }
    }
    return;
  }
  await_earlier_kernels();  // the tokens' codes and the outputs are step data

  // Consumers: warpgroup c (weight rows 64c..), thread index within the consumers `me`.
  const int consumer = warp / 4, me = threadIdx.x, g = lane / 4, t = lane % 4;
  float d[Config::kAccumulators], total[Config::kAccumulators];
  int64_t part_begin = first_unit;
  for (int64_t u = first_unit; u < end_unit; ++u) {
    const int step = static_cast<int>(u - first_unit), s = step % kStages;
    mbarrier_wait(&full[s], (step / kStages) & 1);
    const uint32_t stage = shared_address(stages + s * Config::kStageBytes);
    const uint32_t weights = stage + consumer * (kTileRows / 2) * kChunkBytes, tokens = stage + Config::kWeightBytes;
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < kChunkBytes / 32; ++k)
      wgmma_e4m3<N>(d, operand_descriptor(weights + 32 * k), operand_descriptor(tokens + 32 * k), k > 0);
    wgmma_commit();
    wgmma_wait_all();
    if (lane == 0) mbarrier_arrive(&empty[s]);  // this warp's reads of the stage are done
#pragma unroll
    for (int i = 0; i < Config::kAccumulators; ++i) total[i] = u == part_begin ? d[i] : total[i] + d[i];

    const int tile = static_cast<int>(u / a.chunks), chunk = static_cast<int>(u % a.chunks);
    if (chunk != a.chunks - 1 && u != end_unit - 1) continue;
    // The end of this block's part of the tile.
    const int64_t tile_first = static_cast<int64_t>(tile) * a.chunks;
    const int first_block = block_of(tile_first, a.units, blocks);
    const int parts = block_of(tile_first + a.chunks - 1, a.units, blocks) - first_block + 1;
    part_begin = u + 1;
    if (parts > 1) {
      const int part = blockIdx.x - first_block;
      float* const slots = a.partial + static_cast<int64_t>(tile) * a.max_parts * kConsumerThreads * Config::kAccumulators;
      float* const mine = slots + static_cast<int64_t>(part) * kConsumerThreads * Config::kAccumulators;
#pragma unroll
      for (int i = 0; i < Config::kAccumulators; ++i) mine[i * kConsumerThreads + me] = total[i];
      __threadfence();
      consumers_sync();
      if (me == 0) last_part = atomicAdd(a.counters + tile, 1u) == static_cast<uint32_t>(parts - 1);
      consumers_sync();
      if (!last_part) continue;
      __threadfence();
      // Every part in block order, this one's too from scratch: the same sums whichever block is last.
      // A part's loads all go out before its adds (kept in flight: one L2 round trip a part).
#pragma unroll
      for (int i = 0; i < Config::kAccumulators; ++i) total[i] = 0.0f;
      for (int p = 0; p < parts; ++p) {
        const float* const other = slots + static_cast<int64_t>(p) * Config::kAccumulators * kConsumerThreads + me;
        constexpr int kBatch = Config::kAccumulators < 32 ? Config::kAccumulators : 32;
#pragma unroll
        for (int first = 0; first < Config::kAccumulators; first += kBatch) {
          float loaded[kBatch];
#pragma unroll
          for (int i = 0; i < kBatch; ++i) loaded[i] = __ldcg(other + (first + i) * kConsumerThreads);
#pragma unroll
          for (int i = 0; i < kBatch; ++i) total[first + i] += loaded[i];
        }
      }
      if (me == 0) a.counters[tile] = 0;  // ready for the next launch (or replay)
    }
    const int member = tile_member(a.tile_begin, tile);
    const int64_t n = a.n[member];
    const int64_t row0 = static_cast<int64_t>(tile - a.tile_begin[member]) * kTileRows + consumer * 64 + (warp % 4) * 16 + g;
    // The scales first, all loads at once: the thread's two rows and its N/4 tokens.
    const float col_scale[2] = {row0 < n ? a.col_scales[member][row0] : 0.0f,
                                row0 + 8 < n ? a.col_scales[member][row0 + 8] : 0.0f};
    float row_scale[N / 4];
#pragma unroll
    for (int j = 0; j < N / 4; ++j) {
      const int token = (j / 2) * 8 + 2 * t + j % 2;
      row_scale[j] = token < a.rows ? a.row_scales[token] : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < Config::kAccumulators; ++i) {
      const int64_t row = row0 + ((i % 4) >= 2 ? 8 : 0);
      const int token = (i / 4) * 8 + 2 * t + i % 2;
      if (row < n && token < a.rows)
        a.y[member][token * n + row] = total[i] * row_scale[(i / 4) * 2 + i % 2] * col_scale[(i % 4) / 2];
    }
  }
}

// The launch's shape: its tiles, units and blocks, and the most blocks a tile's units span.
struct Plan {
  int tile_begin[GemvGroup::kMaxMembers + 1] = {};
  int64_t units = 0;
  int blocks = 0;
  int max_parts = 0;
};

Plan plan_of(const GemvGroup& group, int64_t k) {
  Plan plan;
  for (int i = 0; i < group.count; ++i)
    plan.tile_begin[i + 1] = plan.tile_begin[i] + static_cast<int>((group.n[i] + kTileRows - 1) / kTileRows);
  const int64_t chunks = k / kChunkBytes, tiles = plan.tile_begin[group.count];
  plan.units = tiles * chunks;
  // At least 4 units a block (a block's ramp over its run), at most one block a SM.
  plan.blocks = static_cast<int>(std::clamp<int64_t>(plan.units / 4, 1, multiprocessor_count()));
  // A run is at least floor(U/G) units, so a tile's C units meet at most ceil((C - 1) / floor(U/G)) + 1 runs.
  const int64_t run = plan.units / plan.blocks;
  plan.max_parts = static_cast<int>(std::min<int64_t>(plan.blocks, (chunks - 1 + run - 1) / run + 1));
  return plan;
}

int tokens_instance(int64_t rows) { return rows <= 8 ? 8 : rows <= 16 ? 16 : rows <= 32 ? 32 : rows <= 64 ? 64 : 128; }

void check_group(int64_t rows, const GemvGroup& group, int64_t k) {
  if (!wgmma_skinny_gemm_fits(rows, k))
    fail("wgmma_skinny_gemm: {} rows of k = {} do not fit (1–128 rows, k a multiple of 128, sm_90)", rows, k);
  if (group.count < 1 || group.count > GemvGroup::kMaxMembers) fail("wgmma_skinny_gemm: a group of {} weights", group.count);
}

// The shared tiles' parts (every tile's max_parts slots of all the consumers' accumulators) and a counter a tile.
WgmmaScratch scratch_of(const Plan& plan, int64_t rows, int members) {
  const int64_t tiles = plan.tile_begin[members];
  WgmmaScratch need;
  need.floats = static_cast<size_t>(tiles * plan.max_parts * kConsumerThreads * (tokens_instance(rows) / 2));
  need.counters = static_cast<size_t>(tiles);
  return need;
}

template <int N>
void launch_instance(const WgmmaArgs& args, const WeightMaps& maps, const CUtensorMap& x_map, int blocks, cudaStream_t s) {
  static const bool sized = [] {
    OCTET_CUDA_CHECK(cudaFuncSetAttribute(wgmma_skinny_gemm_kernel<N>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          WgmmaConfig<N>::kSharedBytes));
    return true;
  }();
  (void)sized;
  launch_kernel(wgmma_skinny_gemm_kernel<N>, LaunchShape{dim3(blocks), dim3(kThreads), WgmmaConfig<N>::kSharedBytes}, s,
                args, maps, x_map);
  OCTET_CUDA_LAUNCH_CHECK();
}

}  // namespace

bool wgmma_skinny_gemm_fits(int64_t rows, int64_t k) {
  if (rows < 1 || rows > kMaxTokens || k < kChunkBytes || k % kChunkBytes != 0 || k / kChunkBytes > (int64_t{1} << 24)) return false;
  static const bool hopper = [] {
    int device = 0, major = 0, minor = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) return false;
    return major == 9 && minor == 0;  // wgmma: sm_90a only (the build's 90a code)
  }();
  return hopper;
}


WgmmaScratch wgmma_skinny_gemm_scratch(int64_t rows, const GemvGroup& group, int64_t k) {
  check_group(rows, group, k);
  return scratch_of(plan_of(group, k), rows, group.count);
}

void launch_wgmma_skinny_gemm(const uint8_t* x, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k,
                              float* scratch, size_t scratch_floats, uint32_t* counters, size_t counter_count,
                              cudaStream_t s) {
  check_group(rows, group, k);
  const Plan plan = plan_of(group, k);
  const WgmmaScratch need = scratch_of(plan, rows, group.count);
  if (scratch == nullptr || scratch_floats < need.floats || counters == nullptr || counter_count < need.counters)
    fail("wgmma_skinny_gemm: {} scratch floats and {} counters needed, {} and {} given", need.floats, need.counters,
         scratch_floats, counter_count);
  WgmmaArgs args;
  args.row_scales = row_scales;
  args.rows = static_cast<int>(rows);
  args.chunks = static_cast<int>(k / kChunkBytes);
  args.count = group.count;
  WeightMaps maps{};
  for (int i = 0; i < group.count; ++i) {
    if (group.n[i] < 1) fail("wgmma_skinny_gemm: weight {} of the group has {} rows", i, group.n[i]);
    maps.w[i] = byte_matrix_tensor_map(group.w[i], group.n[i], k, kTileRows);
    args.col_scales[i] = group.col_scales[i];
    args.y[i] = group.y[i];
    args.n[i] = group.n[i];
  }
  for (int i = 0; i <= GemvGroup::kMaxMembers; ++i) args.tile_begin[i] = plan.tile_begin[std::min(i, group.count)];
  for (int i = group.count + 1; i <= GemvGroup::kMaxMembers; ++i) args.tile_begin[i] = INT32_MAX;  // never reached
  args.units = plan.units;
  args.max_parts = plan.max_parts;
  args.partial = scratch;
  args.counters = counters;
  const int tokens = tokens_instance(rows);
  const CUtensorMap x_map = byte_matrix_tensor_map(x, rows, k, tokens);
  switch (tokens) {
    case 8: launch_instance<8>(args, maps, x_map, plan.blocks, s); break;
    case 16: launch_instance<16>(args, maps, x_map, plan.blocks, s); break;
    case 32: launch_instance<32>(args, maps, x_map, plan.blocks, s); break;
    case 64: launch_instance<64>(args, maps, x_map, plan.blocks, s); break;
    default: launch_instance<128>(args, maps, x_map, plan.blocks, s); break;
  }
}

}  // namespace octet::backend::cuda
