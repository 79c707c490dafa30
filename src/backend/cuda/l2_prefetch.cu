// The weight prefetch into L2 (CudaBackend::prefetch_for_following_linear): a few blocks ask L2 for
// every 128-byte line of up to four byte ranges. prefetch.global.L2 returns no data and holds no
// register, so each thread issues its lines back to back and the kernel ends before they arrive;
// DRAM then fetches them while the step's small kernels (norms, RoPE, attention) leave it idle.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

#include <algorithm>

namespace octet::backend::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kLineBytes = 128;
constexpr int64_t kLinesPerThread = 8;  // enough blocks that issuing the prefetches takes well under a µs
constexpr int kMaxBlocks = 128;

__global__ void __launch_bounds__(kThreads) l2_prefetch_kernel(L2PrefetchRanges ranges, bool evict_last) {
  await_earlier_kernels();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int r = 0; r < ranges.count; ++r) {
    const char* base = static_cast<const char*>(ranges.start[r]);
    const int64_t lines = (ranges.bytes[r] + kLineBytes - 1) / kLineBytes;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < lines; i += stride) {
      // Every address lies inside the range (its last line may be partial).
      const char* line = base + i * kLineBytes;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
      if (evict_last) asm volatile("prefetch.global.L2::evict_last [%0];\n" ::"l"(line));
      else asm volatile("prefetch.global.L2 [%0];\n" ::"l"(line));
#else
      (void)line;
#endif
    }
  }
}

}  // namespace

void launch_l2_prefetch(const L2PrefetchRanges& ranges, bool evict_last, cudaStream_t s) {
  int64_t lines = 0;
  for (int r = 0; r < ranges.count; ++r) lines += (ranges.bytes[r] + kLineBytes - 1) / kLineBytes;
  if (lines == 0) return;
  const int64_t wanted = (lines + kThreads * kLinesPerThread - 1) / (kThreads * kLinesPerThread);
  const int blocks = static_cast<int>(std::clamp<int64_t>(wanted, 1, kMaxBlocks));
  launch_kernel(l2_prefetch_kernel, LaunchShape{dim3(blocks), dim3(kThreads)}, s, ranges, evict_last);
}

}  // namespace octet::backend::cuda
