// Probe (not part of the engine): how fast one block a SM streams a decode GEMM's weight tiles into
// the SM, three ways, nothing computed. Question it answers (docs/PERFORMANCE.md, version 17): is the
// narrow wgmma GEMM's 1.0–1.3 TB/s on 32–48-row tiles the copy engine's cost of many 128-byte row
// pieces, and would a tile-contiguous weight layout (one 1-D bulk copy a stage) or the GEMV's plain
// 16-byte loads stream faster? (Answered on the H200: docs/PERFORMANCE.md version 18, no.)
//   tensor: 2-D tensor copies of `rows` rows × 128 bytes, `chunks` copies a stage (the narrow kernel's way)
//   bulk:   one 1-D bulk copy of rows · 128 · chunks contiguous bytes a stage (a layout made at load time)
//   loads:  8 warps of 16-byte loads along the rows, 4 in flight a thread (the GEMV's way)
// Each launch reads `blocks` tiles of rows × k bytes from one of 8 copies in turn (together past the L2).
//
//   g++ -std=c++20 -O2 -Isrc -I/usr/local/cuda/include -c src/backend/cuda/tensor_map.cpp -o tensor_map.o
//   nvcc -arch=sm_90a -std=c++17 -O3 -Isrc tools/probe_weight_stream.cu tensor_map.o -lfmt -o probe
//   ./probe ROWS K [CHUNKS]        e.g. ./probe 32 4096 4 (the 8B o projection's tiles)
//   the sweep for the narrow kernel's shapes (8B q/k/v 48, o/down 32, gate/up 224; 70B o/down 64):
//   for a in "32 4096 1" "32 4096 4" "32 14336 4" "48 4096 4" "224 4096 1" "64 8192 2"; do ./probe $a; done
#include "backend/cuda/async_copy.cuh"
#include "backend/cuda/tensor_map.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace cuda = octet::backend::cuda;

namespace {

constexpr int kConsumerWarps = 8;
constexpr int kThreads = kConsumerWarps * 32 + 32;
constexpr int kMaxStages = 16;
constexpr int kSharedBytes = 192 * 1024 + 1024;
constexpr int kCopies = 8;

#define CHECK(call)                                                                              \
  do {                                                                                           \
    const cudaError_t e = (call);                                                                \
    if (e != cudaSuccess) {                                                                      \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e));           \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

struct Shape {
  int rows, chunks_per_tile, stage_chunks, stages, stage_bytes;
};

enum class Mode { kTensor, kBulk };

// Producer: lane 0 of the last warp fills the stages; consumers: each warp waits for a stage and
// releases it (one word read, so the bytes are used).
template <Mode M>
__global__ void __launch_bounds__(kThreads, 1)
copy_probe(const __grid_constant__ CUtensorMap map, const uint8_t* tiles, Shape s, unsigned* sink) {
  extern __shared__ uint8_t dynamic_shared[];
  __shared__ unsigned long long full[kMaxStages], empty[kMaxStages];
  uint8_t* const base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(dynamic_shared) + 1023) & ~uintptr_t{1023});
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int fills = s.chunks_per_tile / s.stage_chunks;
  if (threadIdx.x == 0) {
    for (int i = 0; i < s.stages; ++i) cuda::mbarrier_init(&full[i], 1), cuda::mbarrier_init(&empty[i], kConsumerWarps);
    cuda::mbarrier_init_fence();
  }
  __syncthreads();
  if (warp == kConsumerWarps) {
    if (lane != 0) return;
    for (int f = 0; f < fills; ++f) {
      const int st = f % s.stages;
      if (f >= s.stages) cuda::mbarrier_wait(&empty[st], ((f / s.stages) - 1) & 1);
      uint8_t* const dst = base + st * s.stage_bytes;
      cuda::mbarrier_expect_bytes(&full[st], s.stage_bytes);
      if constexpr (M == Mode::kTensor) {
        for (int c = 0; c < s.stage_chunks; ++c)
          cuda::tensor_copy_2d(cuda::shared_address(dst + c * s.rows * 128), &map, (f * s.stage_chunks + c) * 128,
                               static_cast<int>(blockIdx.x) * s.rows, &full[st]);
      } else {
        const uint8_t* src = tiles + (static_cast<size_t>(blockIdx.x) * fills + f) * s.stage_bytes;
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                         cuda::shared_address(dst)),
                     "l"(src), "r"(s.stage_bytes), "r"(cuda::shared_address(&full[st]))
                     : "memory");
      }
    }
    return;
  }
  unsigned seen = 0;
  for (int f = 0; f < fills; ++f) {
    const int st = f % s.stages;
    cuda::mbarrier_wait(&full[st], (f / s.stages) & 1);
    seen += reinterpret_cast<const unsigned*>(base + st * s.stage_bytes)[threadIdx.x];
    __syncwarp();
    if (lane == 0) cuda::mbarrier_arrive(&empty[st]);
  }
  if (seen == 0x12345678u) *sink = seen;
}

// The GEMV's way: the block's rows × k bytes by 16-byte loads, each warp along one row at a time.
__global__ void __launch_bounds__(256) load_probe(const uint8_t* w, int rows, int64_t k, unsigned* sink) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  uint4 acc = {0, 0, 0, 0};
  for (int r = warp; r < rows; r += 8) {
    const uint4* row = reinterpret_cast<const uint4*>(w + (static_cast<int64_t>(blockIdx.x) * rows + r) * k);
    const int64_t pieces = k / 16;
    for (int64_t p = lane; p < pieces; p += 32 * 4) {
      uint4 v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) v[u] = p + 32 * u < pieces ? __ldg(row + p + 32 * u) : uint4{0, 0, 0, 0};
#pragma unroll
      for (int u = 0; u < 4; ++u) acc.x ^= v[u].x, acc.y ^= v[u].y, acc.z ^= v[u].z, acc.w ^= v[u].w;
    }
  }
  if ((acc.x ^ acc.y ^ acc.z ^ acc.w) == 0x12345678u) *sink = acc.x;
}

template <typename Launch>
double gigabytes_per_second(size_t bytes_per_launch, Launch&& launch) {
  for (int i = 0; i < kCopies; ++i) launch(i);
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  constexpr int kLaunches = 40;
  CHECK(cudaEventRecord(start));
  for (int i = 0; i < kLaunches; ++i) launch(i % kCopies);
  CHECK(cudaEventRecord(stop));
  CHECK(cudaEventSynchronize(stop));
  CHECK(cudaGetLastError());
  float ms = 0;
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  return static_cast<double>(bytes_per_launch) * kLaunches / (ms * 1e-3) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s ROWS K [CHUNKS]\n", argv[0]);
    return 2;
  }
  const int rows = std::atoi(argv[1]);
  const int64_t k = std::atoll(argv[2]);
  const int stage_chunks = argc > 3 ? std::atoi(argv[3]) : 1;
  if (rows < 8 || rows > 256 || rows % 8 != 0 || k % (128 * stage_chunks) != 0 || stage_chunks < 1) {
    std::fprintf(stderr, "ROWS 8–256 (a multiple of 8), K a multiple of 128 · CHUNKS\n");
    return 2;
  }
  int sms = 0;
  CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int blocks = std::min(sms, 128);  // the narrow kernel's 8B o / down launches: 128 tiles
  Shape s{rows, static_cast<int>(k / 128), stage_chunks, 0, rows * 128 * stage_chunks};
  s.stages = std::min(kMaxStages, 192 * 1024 / s.stage_bytes);
  const size_t copy_bytes = static_cast<size_t>(blocks) * rows * k;
  uint8_t* w = nullptr;
  unsigned* sink = nullptr;
  CHECK(cudaMalloc(&w, copy_bytes * kCopies));
  CHECK(cudaMalloc(&sink, sizeof(unsigned)));
  std::vector<uint8_t> pattern(copy_bytes);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  for (int c = 0; c < kCopies; ++c) CHECK(cudaMemcpy(w + c * copy_bytes, pattern.data(), copy_bytes, cudaMemcpyHostToDevice));
  std::vector<CUtensorMap> maps;
  for (int c = 0; c < kCopies; ++c) maps.push_back(cuda::byte_matrix_tensor_map(w + c * copy_bytes, int64_t{blocks} * rows, k, rows));
  CHECK(cudaFuncSetAttribute(copy_probe<Mode::kTensor>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
  CHECK(cudaFuncSetAttribute(copy_probe<Mode::kBulk>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
  const double tensor = gigabytes_per_second(copy_bytes, [&](int c) {
    copy_probe<Mode::kTensor><<<blocks, kThreads, kSharedBytes>>>(maps[c], nullptr, s, sink);
  });
  const double bulk = gigabytes_per_second(copy_bytes, [&](int c) {
    copy_probe<Mode::kBulk><<<blocks, kThreads, kSharedBytes>>>(maps[c], w + c * copy_bytes, s, sink);
  });
  const double loads = gigabytes_per_second(copy_bytes, [&](int c) { load_probe<<<blocks, 256>>>(w + c * copy_bytes, rows, k, sink); });
  std::printf("rows %d k %lld: %d blocks, %.1f MB a launch, %d stages of %d B (%d chunks) | tensor %.0f GB/s | bulk %.0f GB/s | loads %.0f GB/s\n",
              rows, static_cast<long long>(k), blocks, copy_bytes / 1e6, s.stages, s.stage_bytes, stage_chunks, tensor, bulk, loads);
  return 0;
}
