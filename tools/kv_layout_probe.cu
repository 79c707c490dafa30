// Read bandwidth of the decode attention's K/V access pattern under two cache layouts (an experiment, H200):
//   position-major (the paged pool's layout): cell (position, kv head) at (position · kv_heads + head) · 128 bytes, so
//     one (token, head) block reads 128-byte rows 1 KB apart (8 KV heads), its neighbours' rows in between;
//   head-major: cell at (head · positions + position) · 128 bytes, a (token, head) block's rows contiguous.
// Each block (token, head) of 128 threads streams its K and V rows of all positions with 16-byte loads, 8 in flight a
// thread, like the kernel's copies; the grid is every (token, head). Sizes far above the L2, so every byte is DRAM's.
// Then how the decode attention's K/V copies load: the grouped kernel's exact access pattern
// (position-major pool, cell (position, kv head) at (position · kv_heads + head) · 128 bytes; a warp's tile of 16
// positions copied as 4 instructions of 32 lanes × 16 bytes, 8 lanes a 128-byte row; K and V; 4 warps a block, tiles
// strided by the warps; one tile in flight while the last one is used) through three routes:
//   ldcg      16-byte __ldcg loads into registers (the next tile's issued before this tile's use);
//   cp.async  cp.async.cg into a 2-stage shared-memory ring per warp, as the kernel;
//   +scales   cp.async as above plus the kernel's 4-byte .ca copies of the per-cell K and V scales.
// Each prints GB/s of K/V bytes (sizes far above the L2, so every byte is DRAM's); under ncu
// (lts__t_sectors.sum, lts__t_sector_hit_rate.pct, dram__bytes_read.sum) each route's L2 traffic shows. Last, the
// same routes at one Llama-3.1-8B b64 layer's shape: 512 blocks, all resident at once, as the attention's launch.
//   nvcc -O3 -arch=sm_90a -o kv_layout_probe tools/kv_layout_probe.cu && ./kv_layout_probe
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

constexpr int kHeads = 8, kPositions = 1024, kTokens = 512, kRowBytes = 128;
constexpr int kThreads = 128, kInFlight = 8;  // the layout probe
constexpr int kWarps = 4, kTile = 16;         // the copy probe: the kernel's warps and tiles
constexpr int kTiles = kPositions / kTile, kStageBytes = 2 * kTile * kRowBytes + 2 * kTile * 4;
enum Route { ldcg, cp_async, cp_async_scales };

template <bool kHeadMajor>
__global__ void __launch_bounds__(kThreads) read_rows(const uint4* k, const uint4* v, uint32_t* sink) {
  const int token = blockIdx.x / kHeads, head = blockIdx.x % kHeads;
  constexpr int kPieces = kRowBytes / 16;                 // 16-byte pieces of a row
  constexpr int kTotal = 2 * kPositions * kPieces;        // K and V pieces of the block
  uint32_t acc = 0;
  for (int base = threadIdx.x; base < kTotal; base += kThreads * kInFlight) {
    uint4 got[kInFlight];
#pragma unroll
    for (int i = 0; i < kInFlight; ++i) {
      const int index = base + i * kThreads;
      const int half = index / (kPositions * kPieces), rest = index % (kPositions * kPieces);
      const int position = rest / kPieces, piece = rest % kPieces;
      const int64_t row = kHeadMajor ? (static_cast<int64_t>(token) * kHeads + head) * kPositions + position
                                     : (static_cast<int64_t>(token) * kPositions + position) * kHeads + head;
      got[i] = index < kTotal ? __ldcg((half ? v : k) + row * kPieces + piece) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int i = 0; i < kInFlight; ++i) acc ^= got[i].x ^ got[i].y ^ got[i].z ^ got[i].w;
  }
  if (acc == 0x12345678u) sink[blockIdx.x] = acc;  // keeps the loads
}

__device__ __forceinline__ void copy16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void copy4(uint32_t dst, const void* src) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
}

template <Route R>
__global__ void __launch_bounds__(kWarps * 32) stream(const uint8_t* k, const uint8_t* v, const float* ks,
                                                      const float* vs, uint32_t* sink, int first_token) {
  __shared__ __align__(16) uint8_t stages[kWarps][2][kStageBytes];
  const int token = first_token + static_cast<int>(blockIdx.x) / kHeads, head = blockIdx.x % kHeads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int my_tiles = kTiles / kWarps;
  auto at = [&](int tile, int c) {  // byte offset of copy c of the lane in tile `tile` of the warp
    const int index = lane + 32 * c, row = index / 8, piece = index % 8;
    const int64_t position = static_cast<int64_t>(token) * kPositions + (warp + tile * kWarps) * kTile + row;
    return (position * kHeads + head) * kRowBytes + piece * 16;
  };
  uint32_t acc = 0;
  if constexpr (R == ldcg) {
    uint4 next[8];
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      next[c] = __ldcg(reinterpret_cast<const uint4*>(k + at(0, c)));
      next[4 + c] = __ldcg(reinterpret_cast<const uint4*>(v + at(0, c)));
    }
    for (int t = 0; t < my_tiles; ++t) {
      uint4 now[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) now[i] = next[i];
      if (t + 1 < my_tiles) {
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          next[c] = __ldcg(reinterpret_cast<const uint4*>(k + at(t + 1, c)));
          next[4 + c] = __ldcg(reinterpret_cast<const uint4*>(v + at(t + 1, c)));
        }
      }
#pragma unroll
      for (int i = 0; i < 8; ++i) acc ^= now[i].x ^ now[i].y ^ now[i].z ^ now[i].w;
    }
  } else {
    auto fetch = [&](int tile) {
      if (tile < my_tiles) {
        const uint32_t stage = static_cast<uint32_t>(__cvta_generic_to_shared(stages[warp][tile % 2]));
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          copy16(stage + (lane + 32 * c) * 16, k + at(tile, c));
          copy16(stage + kTile * kRowBytes + (lane + 32 * c) * 16, v + at(tile, c));
        }
        if constexpr (R == cp_async_scales) {
          const int64_t position = static_cast<int64_t>(token) * kPositions + (warp + tile * kWarps) * kTile + lane % kTile;
          copy4(stage + 2 * kTile * kRowBytes + lane * 4, (lane < kTile ? ks : vs) + position * kHeads + head);
        }
      }
      asm volatile("cp.async.commit_group;\n" ::: "memory");
    };
    fetch(0);
    for (int t = 0; t < my_tiles; ++t) {
      fetch(t + 1);
      asm volatile("cp.async.wait_group 1;\n" ::: "memory");
      __syncwarp();
      const uint4 got = reinterpret_cast<const uint4*>(stages[warp][t % 2])[lane];
      acc ^= got.x ^ got.y ^ got.z ^ got.w;
      __syncwarp();
    }
  }
  if (acc == 0x12345678u) sink[blockIdx.x] = acc;  // keeps the loads
}

// GB/s of `launch(run)` reading `tokens` tokens' K and V (a warm-up, then 10 timed launches).
template <class Launch>
double gbps(Launch launch, int tokens = kTokens) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  launch(0);
  constexpr int kRuns = 10;
  cudaEventRecord(start);
  for (int r = 0; r < kRuns; ++r) launch(r + 1);
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0.0f;
  cudaEventElapsedTime(&ms, start, stop);
  const double bytes = 2.0 * tokens * kHeads * kPositions * kRowBytes * kRuns;
  return bytes / (ms * 1e-3) / 1e9;
}

int main() {
  const size_t bytes = static_cast<size_t>(kTokens) * kHeads * kPositions * kRowBytes;  // 512 MiB each
  const size_t scales = static_cast<size_t>(kTokens) * kHeads * kPositions * sizeof(float);
  uint8_t *k = nullptr, *v = nullptr;
  float *ks = nullptr, *vs = nullptr;
  uint32_t* sink = nullptr;
  if (cudaMalloc(&k, bytes) != cudaSuccess || cudaMalloc(&v, bytes) != cudaSuccess || cudaMalloc(&ks, scales) != cudaSuccess ||
      cudaMalloc(&vs, scales) != cudaSuccess || cudaMalloc(&sink, kTokens * kHeads * 4) != cudaSuccess) {
    std::fprintf(stderr, "kv_layout_probe: cannot allocate the pool\n");
    return 1;
  }
  cudaMemset(k, 1, bytes);
  cudaMemset(v, 2, bytes);
  cudaMemset(ks, 0, scales);
  cudaMemset(vs, 0, scales);
  const auto* k4 = reinterpret_cast<const uint4*>(k);
  const auto* v4 = reinterpret_cast<const uint4*>(v);
  const dim3 grid(kTokens * kHeads);
  for (int round = 0; round < 3; ++round)
    std::printf("round %d: position-major %.0f GB/s, head-major %.0f GB/s\n", round,
                gbps([&](int) { read_rows<false><<<grid, kThreads>>>(k4, v4, sink); }),
                gbps([&](int) { read_rows<true><<<grid, kThreads>>>(k4, v4, sink); }));
  for (int round = 0; round < 3; ++round)
    std::printf("round %d: ldcg %.0f GB/s, cp.async %.0f GB/s, cp.async + scales %.0f GB/s\n", round,
                gbps([&](int) { stream<ldcg><<<grid, kWarps * 32>>>(k, v, ks, vs, sink, 0); }),
                gbps([&](int) { stream<cp_async><<<grid, kWarps * 32>>>(k, v, ks, vs, sink, 0); }),
                gbps([&](int) { stream<cp_async_scales><<<grid, kWarps * 32>>>(k, v, ks, vs, sink, 0); }));
  // One Llama-3.1-8B b64 layer's shape: 64 tokens × 8 KV heads = 512 blocks, all resident at once (as the attention's
  // 4 a SM), each run on other tokens so that the L2 holds none of it; the kernel's copies without its arithmetic.
  constexpr int kLayerTokens = 64;
  const dim3 layer(kLayerTokens * kHeads);
  auto first = [](int run) { return run % (kTokens / kLayerTokens) * kLayerTokens; };
  for (int round = 0; round < 3; ++round)
    std::printf("round %d, one b64 layer (512 blocks): ldcg %.0f GB/s, cp.async %.0f GB/s, cp.async + scales %.0f GB/s\n",
                round, gbps([&](int r) { stream<ldcg><<<layer, kWarps * 32>>>(k, v, ks, vs, sink, first(r)); }, kLayerTokens),
                gbps([&](int r) { stream<cp_async><<<layer, kWarps * 32>>>(k, v, ks, vs, sink, first(r)); }, kLayerTokens),
                gbps([&](int r) { stream<cp_async_scales><<<layer, kWarps * 32>>>(k, v, ks, vs, sink, first(r)); },
                     kLayerTokens));
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
}
