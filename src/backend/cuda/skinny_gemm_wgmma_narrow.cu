// FP8 E4M3 skinny GEMM on sm_90's warpgroup MMAs for decode batches of 1–64 tokens, the weight rows
// as the MMA's n: y[m, n] = row_scales[m] · col_scales[n] · Σ_k x[m, k] · w[n, k], the contract of
// skinny_gemm_fp8.cu.
//
// skinny_gemm_wgmma.cu gives 128-row tiles to the SMs in k chunks (stream-K) and adds the parts of
// shared tiles in a fix-up; ncu of its 8B b64 q/k/v launch (docs/PERFORMANCE.md, session 22) found
// 7 MB of part and output stores for 25.5 MB of weights, and the SMs idle a third of the launch.
// Here the batch is the MMA's m (64 rows; the copy engine zero-fills the rows past the batch) and a
// tile has as few weight rows as spread the launch over the SMs at one tile a block: 2·Half rows,
// Half (8 to 128) the n of each of the block's two consumer warpgroups. Every block runs its tile's
// whole k and writes its outputs: no parts, no counters, each output summed in one fixed order (the
// same bits whatever the batch). Past 132 tiles of 256 rows the blocks run several tiles in turn.
//
// Every block reads the tokens' chunk (64 rows × 128 bytes a 128-byte k chunk), which at 48-row
// tiles is more bytes than its weights. Above 16 tokens the blocks run in clusters of C (2 by
// default): each block's producer brings 64/C of the chunk's rows into all C blocks at once
// (multicast), so the L2 serves a chunk once a cluster. A stage is refilled only once the consumers
// of every block of the cluster have released it: each consumer warp arrives on the stage's
// barrier in every block. Blocks past the last tile (the cluster's padding) still carry their share
// of the tokens and release their stages, storing nothing.
//
// A consumer keeps two chunks' MMAs in flight (up to n 80, where the registers allow two sets of
// accumulators besides the totals); a stage brings up to four chunks, each weight row's copies
// asked for back to back. Still an experiment (OCTET_CUDA_WGMMA_GEMM_ROWS, off by default): on the
// H200 it streams the 8B shapes at 1.0–1.1 TB/s on 32–48-row tiles and 3.1 TB/s on 224-row ones,
// its consumers mostly waiting for their stages to land (docs/PERFORMANCE.md, version 17), so the
// GEMV and cuBLASLt stay faster.
#include "backend/cuda/async_copy.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/integer_setting.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/wgmma_fp8.cuh"
#include "backend/cuda/wgmma_narrow_plan.h"

#include <algorithm>
#include <mutex>
#include <type_traits>

namespace octet::backend::cuda {
namespace {

constexpr int kTokens = kWgmmaNarrowTokens;
constexpr int kChunkBytes = kWgmmaNarrowChunkBytes;
constexpr int kMaxStageChunks = kWgmmaNarrowMaxStageChunks;
constexpr int kMaxStages = kWgmmaNarrowMaxStages;
constexpr int kStagesBytes = kWgmmaNarrowStagesBytes;
constexpr int kSharedBytes = kStagesBytes + 1024;  // + the 1024-byte alignment's slack
constexpr int kConsumers = 2;      // warpgroups, each Half of the tile's rows
constexpr int kConsumerWarps = kConsumers * 4;
constexpr int kThreads = kConsumerWarps * 32 + 32;  // and the producer warp

template <int Half>
struct NarrowConfig {
  static constexpr int kTileRows = 2 * Half;
  static constexpr int kTileBytes = kTileRows * kChunkBytes;  // a chunk's weights: a multiple of 2 KiB
  static constexpr int kAccumulators = Half / 2;              // m64nHalf over 128 threads
  // Two chunks' MMAs in flight need two sets of accumulators besides the totals: up to n 80 a
  // warpgroup (three warps of a quarter of the SM share its 16K registers: 168 a thread at most).
  static constexpr bool kTwoInFlight = 3 * kAccumulators <= 120;
};

struct NarrowArgs {
  const float* row_scales = nullptr;
  int rows = 0;
  WgmmaNarrowStages stage;
  int chunks = 0;  // k / kChunkBytes
  int tiles = 0;   // of all members
  int tile_begin[GemvGroup::kMaxMembers + 1] = {};  // the members' first tiles; past the last, never reached
  const float* col_scales[GemvGroup::kMaxMembers] = {};
  float* y[GemvGroup::kMaxMembers] = {};
  int64_t n[GemvGroup::kMaxMembers] = {};
};
struct NarrowMaps {
  CUtensorMap w[GemvGroup::kMaxMembers];
};

// The tile's outputs from the thread's float32 totals (wgmma_fp8.cuh's layout: the batch's rows as
// A's, the warpgroup's Half weight rows as B's), scaled; rows past the batch or the member not written.
template <int Half>
__device__ __forceinline__ void store_tile(const NarrowArgs& a, int tile, int consumer, const float (&total)[Half / 2]) {
  const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int member = tile_member(a.tile_begin, tile);
  const int64_t n = a.n[member];
  const int64_t first_row = static_cast<int64_t>(tile - a.tile_begin[member]) * NarrowConfig<Half>::kTileRows +
                            consumer * Half + 2 * (lane % 4);
  const int token = 16 * warp + lane / 4;  // and token + 8
  const float token_scale[2] = {token < a.rows ? a.row_scales[token] : 0.0f,
                                token + 8 < a.rows ? a.row_scales[token + 8] : 0.0f};
  const float* const col_scales = a.col_scales[member];
  float* const y = a.y[member];
#pragma unroll
  for (int j = 0; j < Half / 8; ++j) {
    const int64_t row = first_row + 8 * j;
    const float row_scale[2] = {row < n ? col_scales[row] : 0.0f, row + 1 < n ? col_scales[row + 1] : 0.0f};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int t = token + (e >= 2 ? 8 : 0);
      const int64_t r = row + e % 2;
      if (t < a.rows && r < n) y[t * n + r] = total[4 * j + e] * token_scale[e / 2] * row_scale[e % 2];
    }
  }
}

template <int Half>
__global__ void __launch_bounds__(kThreads, 1)
wgmma_narrow_gemm_kernel(const NarrowArgs a, const __grid_constant__ NarrowMaps maps, const __grid_constant__ CUtensorMap x_map) {
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
  __trap();  // wgmma needs the 90a build (wgmma_narrow_gemm_fits admits sm_90 only)
#endif
  using Config = NarrowConfig<Half>;
  extern __shared__ uint8_t dynamic_shared[];
  __shared__ unsigned long long full[kMaxStages], empty[kMaxStages];
  // Stages 1024-byte aligned (the swizzle's period): the chunks' weight tiles, then their tokens.
  uint8_t* const stages = swizzle_aligned(dynamic_shared);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const unsigned cluster = cluster_blocks(), rank = cluster_block_rank();
  // The block's tiles: blockIdx.x, then every gridDim.x-th (clusters: one tile, or none for padding).
  const bool computes = static_cast<int>(blockIdx.x) < a.tiles;
  const int tiles_here = cluster > 1 ? 1 : (a.tiles - static_cast<int>(blockIdx.x) + gridDim.x - 1) / gridDim.x;
  const int fills = tiles_here * (a.chunks / a.stage.chunks);  // stage fills over the block's tiles
  struct Position {  // a chunk's stage, the stage's fill (its barriers' phase), chunk of k, of the stage, tile
    int stage = 0;
    uint32_t phase = 0;
    int chunk = 0;
    int sub = 0;
    int tile = 0;
  };
  const Position first{0, 0, 0, 0, static_cast<int>(blockIdx.x)};
  auto next_tile = [&](Position& p) {
    if (p.chunk == a.chunks) p.chunk = 0, p.tile += static_cast<int>(gridDim.x);
  };
  auto next_stage = [&](Position& p) {
    if (++p.stage == a.stage.stages) p.stage = 0, p.phase ^= 1;
  };
  auto next_fill = [&](Position p) {  // stepped, not divided: the loops stay short
    next_stage(p);
    p.chunk += a.stage.chunks;
    next_tile(p);
    return p;
  };
  auto next_chunk = [&](Position p) {
    if (++p.sub == a.stage.chunks) p.sub = 0, next_stage(p);
    ++p.chunk;
    next_tile(p);
    return p;
  };
  auto stage_address = [&](int s) { return shared_address(stages) + static_cast<uint32_t>(s * a.stage.bytes); };
  const uint32_t tokens_offset = static_cast<uint32_t>(a.stage.chunks * Config::kTileBytes);

  if (threadIdx.x == 0) {
    for (int s = 0; s < a.stage.stages; ++s) {
      mbarrier_init(&full[s], 1);
      mbarrier_init(&empty[s], cluster * kConsumerWarps);  // every consumer warp of the cluster
    }
    mbarrier_init_fence();
  }
  // The barriers are ready before any block of the cluster copies into this one or arrives on them.
  if (cluster > 1) cluster_sync_all();
  else __syncthreads();

  if (warp == kConsumerWarps) {  // the producer
    const int slice_rows = a.stage.token_rows / static_cast<int>(cluster);
    const uint16_t everyone = static_cast<uint16_t>((1u << cluster) - 1);
    // A fill's weight tiles, its chunks' copies back to back (announcing the tokens' bytes too: they
    // land from every block of the cluster).
    auto copy_weights = [&](const Position& p) {
      mbarrier_expect_bytes(&full[p.stage], a.stage.bytes - (computes ? 0 : static_cast<int>(tokens_offset)));
      if (!computes) return;
      const int member = tile_member(a.tile_begin, p.tile);
      const int row = (p.tile - a.tile_begin[member]) * Config::kTileRows;
      for (int c = 0; c < a.stage.chunks; ++c)  // rows past n land as zeros
        tensor_copy_2d(stage_address(p.stage) + static_cast<uint32_t>(c * Config::kTileBytes), &maps.w[member],
                       (p.chunk + c) * kChunkBytes, row, &full[p.stage]);
    };
    // This block's slice of the fill's token rows, a chunk at a time, into every block of the cluster.
    auto copy_tokens = [&](const Position& p) {
      for (int c = 0; c < a.stage.chunks; ++c) {
        const uint32_t dst = stage_address(p.stage) + tokens_offset +
                             static_cast<uint32_t>((c * a.stage.token_rows + static_cast<int>(rank) * slice_rows) * kChunkBytes);
        const int x = (p.chunk + c) * kChunkBytes;
        if (cluster > 1)
          tensor_copy_2d_multicast(dst, &x_map, x, static_cast<int>(rank) * slice_rows, &full[p.stage], everyone);
        else
          tensor_copy_2d(dst, &x_map, x, 0, &full[p.stage]);
      }
    };
    // The weights are constant through the step: the first stages' tiles are asked for before the
    // wait, so the pipeline fills behind the previous kernel's tail (as gemv_fp8.cu's first chunks).
    const int early = min(fills, a.stage.stages);
    if (lane == 0) {
      Position p = first;
      for (int fill = 0; fill < early; ++fill, p = next_fill(p)) copy_weights(p);
    }
    await_earlier_kernels();
    if (lane == 0) {
      Position p = first;
      for (int fill = 0; fill < early; ++fill, p = next_fill(p)) copy_tokens(p);
      for (int fill = early; fill < fills; ++fill, p = next_fill(p)) {
        mbarrier_wait</*ClusterScope=*/true>(&empty[p.stage], p.phase ^ 1);  // released from its previous fill
        copy_weights(p);
        copy_tokens(p);
      }
    }
    __syncwarp();
  } else {
    await_earlier_kernels();  // the tokens' scales and the outputs are step data
    const int consumer = warp / 4;
    constexpr int kAccumulators = Config::kAccumulators;
    const int steps = fills * a.stage.chunks;  // chunks, each one group of MMAs
    // Two chunks in flight where the registers allow: a chunk's MMAs run while the one before is
    // added up (and its stage released after the stage's last chunk).
    float even[kAccumulators], odd[kAccumulators], total[kAccumulators];
    // A chunk's MMAs into d, one group, its stage's landing awaited at the stage's first chunk.
    // Blocks that only serve their cluster's tokens run them too, on their stages' unwritten weight
    // rows, and store nothing: the MMAs stay on one path, which keeps the compiler from serialising them.
    auto issue = [&](float (&d)[kAccumulators], const Position& p) {
      const int c = p.sub;
      if (c == 0) mbarrier_wait(&full[p.stage], p.phase);
      const uint32_t stage = stage_address(p.stage);
      const uint32_t weights = stage + static_cast<uint32_t>(c * Config::kTileBytes + consumer * Half * kChunkBytes);
      const uint32_t tokens = stage + tokens_offset + static_cast<uint32_t>(c * a.stage.token_rows * kChunkBytes);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < kChunkBytes / 32; ++k)
        wgmma_e4m3<Half>(d, operand_descriptor(tokens + 32 * k), operand_descriptor(weights + 32 * k), k > 0);
      wgmma_commit();
    };
    // A chunk whose MMAs are done: its FP8 sums added into float32 totals (the tensor cores' own sums
    // keep fewer bits over long runs), the stage released in every block of the cluster after its
    // last chunk, the tile stored after the tile's last chunk.
    auto finish = [&](float (&d)[kAccumulators], const Position& p) {
#pragma unroll
      for (int i = 0; i < kAccumulators; ++i) total[i] = p.chunk == 0 ? d[i] : total[i] + d[i];
      if (lane == 0 && p.sub == a.stage.chunks - 1) {
        if (cluster > 1)
          for (unsigned r = 0; r < cluster; ++r) mbarrier_arrive_in_block(&empty[p.stage], r);
        else
          mbarrier_arrive(&empty[p.stage]);
      }
      if (computes && p.chunk == a.chunks - 1) store_tile<Half>(a, p.tile, consumer, total);
    };
    Position at = first, before;
    if constexpr (!Config::kTwoInFlight) {
      for (int step = 0; step < steps; ++step, at = next_chunk(at)) {
        issue(even, at);
        wgmma_wait<0>();
        finish(even, at);
      }
    } else if (steps > 0) {
      // Even chunks into `even`, odd ones into `odd`; chunk s's sums are read once chunk s + 1 is issued.
      issue(even, at);
      int step = 1;
      for (; step + 1 < steps; step += 2) {
        before = at, at = next_chunk(at);
        issue(odd, at);
        wgmma_wait<1>();
        finish(even, before);
        before = at, at = next_chunk(at);
        issue(even, at);
        wgmma_wait<1>();
        finish(odd, before);
      }
      if (step < steps) {  // an even number of chunks: the last one is odd
        before = at, at = next_chunk(at);
        issue(odd, at);
        wgmma_wait<1>();
        finish(even, before);
        wgmma_wait<0>();
        finish(odd, at);
      } else {
        wgmma_wait<0>();
        finish(even, at);
      }
    }
  }
  // No block leaves while another may still copy into it or arrive on its barriers.
  if (cluster > 1) cluster_sync_all();
}

template <int Half>
void allow_shared_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
    OCTET_CUDA_CHECK(cudaFuncSetAttribute(wgmma_narrow_gemm_kernel<Half>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          kSharedBytes));
  });
}

// How many blocks of the instance run at once in clusters of `cluster` (the GPCs' sizes leave some
// SMs out of whole clusters), asked of the runtime once an instance and size.
template <int Half>
int cluster_capacity(int cluster) {
  static int known[5] = {};
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (known[cluster] == 0) {
    allow_shared_memory<Half>();
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(static_cast<unsigned>(multiprocessor_count() / cluster * cluster));
    config.blockDim = dim3(kThreads);
    config.dynamicSmemBytes = kSharedBytes;
    cudaLaunchAttribute attribute = {};
    attribute.id = cudaLaunchAttributeClusterDimension;
    attribute.val.clusterDim.x = static_cast<unsigned>(cluster);
    attribute.val.clusterDim.y = 1;
    attribute.val.clusterDim.z = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
    int clusters = 0;
    OCTET_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, wgmma_narrow_gemm_kernel<Half>, &config));
    known[cluster] = std::max(clusters, 0) * cluster;
  }
  return known[cluster];
}

// f(std::integral_constant<int, Half>) for the instance of `half`.
template <typename F>
void with_instance(int half, F&& f) {
  switch (half) {
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 16: f(std::integral_constant<int, 16>{}); break;
    case 24: f(std::integral_constant<int, 24>{}); break;
    case 32: f(std::integral_constant<int, 32>{}); break;
    case 40: f(std::integral_constant<int, 40>{}); break;
    case 48: f(std::integral_constant<int, 48>{}); break;
    case 56: f(std::integral_constant<int, 56>{}); break;
    case 64: f(std::integral_constant<int, 64>{}); break;
    case 80: f(std::integral_constant<int, 80>{}); break;
    case 96: f(std::integral_constant<int, 96>{}); break;
    case 112: f(std::integral_constant<int, 112>{}); break;
    default: f(std::integral_constant<int, 128>{}); break;
  }
}

// OCTET_CUDA_WGMMA_STAGE_CHUNKS: 128-byte chunks of k a stage at most (1 to 4; default 4, which took
// the 8B down projection from 57 to 40 µs and the b1 step from 5.05 to 4.25 ms against 1).
int stage_chunks_setting() {
  return static_cast<int>(integer_setting("OCTET_CUDA_WGMMA_STAGE_CHUNKS", 4, 1, kMaxStageChunks, "a chunk count, 1 to 4"));
}

// OCTET_CUDA_WGMMA_CLUSTER: the cluster size above 16 tokens (1, 2 or 4; default 2).
int cluster_setting() {
  const int64_t c = integer_setting("OCTET_CUDA_WGMMA_CLUSTER", 2, 1, 4, "a cluster size: 1, 2 or 4");
  if (c == 3) fail("OCTET_CUDA_WGMMA_CLUSTER is '3', expected a cluster size: 1, 2 or 4");
  return static_cast<int>(c);
}

void check_group(int64_t rows, const GemvGroup& group, int64_t k) {
  if (!wgmma_narrow_gemm_fits(rows, k))
    fail("wgmma_narrow_gemm: {} rows of k = {} do not fit (1–64 rows, k a multiple of 128, sm_90)", rows, k);
  if (group.count < 1 || group.count > GemvGroup::kMaxMembers) fail("wgmma_narrow_gemm: a group of {} weights", group.count);
  for (int i = 0; i < group.count; ++i)
    if (group.n[i] < 1 || group.n[i] >= (int64_t{1} << 31))
      fail("wgmma_narrow_gemm: weight {} of the group has {} rows", i, group.n[i]);
}

}  // namespace

bool wgmma_narrow_gemm_fits(int64_t rows, int64_t k) {
  return rows >= 1 && rows <= kTokens && wgmma_skinny_gemm_fits(rows, k);
}

WgmmaNarrowPlan wgmma_narrow_gemm_plan(int64_t rows, const GemvGroup& group, int64_t k) {
  check_group(rows, group, k);
  auto capacity = [](int half, int cluster) {
    int blocks = 0;
    with_instance(half, [&](auto h) { blocks = cluster_capacity<decltype(h)::value>(cluster); });
    return blocks;
  };
  return plan_wgmma_narrow_tiles(group.n, group.count, rows > 16 ? cluster_setting() : 1, multiprocessor_count(), capacity);
}

void launch_wgmma_narrow_gemm(const uint8_t* x, const float* row_scales, int64_t rows, const GemvGroup& group, int64_t k,
                              cudaStream_t s) {
  const WgmmaNarrowPlan plan = wgmma_narrow_gemm_plan(rows, group, k);
  NarrowArgs args;
  args.row_scales = row_scales;
  args.rows = static_cast<int>(rows);
  args.stage = plan_wgmma_narrow_stages(2 * plan.half, rows, plan.cluster, k, stage_chunks_setting());
  args.chunks = static_cast<int>(k / kChunkBytes);
  args.tiles = plan.tiles;
  NarrowMaps maps{};
  for (int i = 0; i < group.count; ++i) {
    maps.w[i] = byte_matrix_tensor_map(group.w[i], group.n[i], k, 2 * plan.half);
    args.col_scales[i] = group.col_scales[i];
    args.y[i] = group.y[i];
    args.n[i] = group.n[i];
    args.tile_begin[i + 1] = args.tile_begin[i] + static_cast<int>((group.n[i] + 2 * plan.half - 1) / (2 * plan.half));
  }
  for (int i = group.count + 1; i <= GemvGroup::kMaxMembers; ++i) args.tile_begin[i] = INT32_MAX;  // never reached
  const CUtensorMap x_map = byte_matrix_tensor_map(x, rows, k, args.stage.token_rows / plan.cluster);
  with_instance(plan.half, [&](auto h) {
    constexpr int H = decltype(h)::value;
    allow_shared_memory<H>();
    launch_kernel(wgmma_narrow_gemm_kernel<H>,
                  LaunchShape{dim3(static_cast<unsigned>(plan.blocks)), dim3(kThreads), kSharedBytes,
                              static_cast<unsigned>(plan.cluster)},
                  s, args, maps, x_map);
    OCTET_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace octet::backend::cuda
