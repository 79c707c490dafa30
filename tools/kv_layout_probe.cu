// Read bandwidth of the decode attention's K/V access pattern under two cache layouts (an experiment, H200):
//   position-major (the paged pool's layout): cell (position, kv head) at (position · kv_heads + head) · 128 bytes, so
//     one (token, head) block reads 128-byte rows 1 KB apart (8 KV heads), its neighbours' rows in between;
//   head-major: cell at (head · positions + position) · 128 bytes, a (token, head) block's rows contiguous.
// Each block (token, head) of 128 threads streams its K and V rows of all positions with 16-byte loads, 8 in flight a
// thread, like the kernel's copies; the grid is every (token, head). Sizes far above the L2, so every byte is DRAM's.
//   nvcc -O3 -arch=sm_90a -o kv_layout_probe tools/kv_layout_probe.cu && ./kv_layout_probe
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

constexpr int kHeads = 8, kPositions = 1024, kTokens = 512, kRowBytes = 128, kThreads = 128, kInFlight = 8;

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

template <bool kHeadMajor>
double gbps(const uint4* k, const uint4* v, uint32_t* sink) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  read_rows<kHeadMajor><<<kTokens * kHeads, kThreads>>>(k, v, sink);  // warm-up
  constexpr int kRuns = 10;
  cudaEventRecord(start);
  for (int r = 0; r < kRuns; ++r) read_rows<kHeadMajor><<<kTokens * kHeads, kThreads>>>(k, v, sink);
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0.0f;
  cudaEventElapsedTime(&ms, start, stop);
  const double bytes = 2.0 * kTokens * kHeads * kPositions * kRowBytes * kRuns;
  return bytes / (ms * 1e-3) / 1e9;
}

int main() {
  const size_t bytes = static_cast<size_t>(kTokens) * kHeads * kPositions * kRowBytes;  // 512 MiB each
  uint4 *k = nullptr, *v = nullptr;
  uint32_t* sink = nullptr;
  if (cudaMalloc(&k, bytes) != cudaSuccess || cudaMalloc(&v, bytes) != cudaSuccess ||
      cudaMalloc(&sink, kTokens * kHeads * 4) != cudaSuccess) {
    std::fprintf(stderr, "kv_layout_probe: cannot allocate 2 × %zu bytes\n", bytes);
    return 1;
  }
  cudaMemset(k, 1, bytes);
  cudaMemset(v, 2, bytes);
  for (int round = 0; round < 3; ++round)
    std::printf("round %d: position-major %.0f GB/s, head-major %.0f GB/s\n", round, gbps<false>(k, v, sink),
                gbps<true>(k, v, sink));
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
}
