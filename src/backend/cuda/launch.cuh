#pragma once
// The one way the backend launches the kernels of a forward step and of sampling (launch_kernel),
// and the one thing each of those kernels does before it touches step data (await_earlier_kernels).
//
// Programmatic dependent launch (PDL, sm_90 and later): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may be scheduled while the kernel before it in
// the stream is still running, which hides the launch and ramp-up of each of a decode step's ~300
// small kernels behind the tail of the one before. Its blocks must then wait (griddepcontrol.wait)
// until that kernel has completed and its writes are visible — before reading anything an earlier
// kernel may have written, and before writing anything (an earlier kernel may still be reading the
// buffer). Only weights and other data constant through the step may be read before the wait
// (gemv_fp8.cu loads its first weight chunks there). Hence every kernel launched through
// launch_kernel calls await_earlier_kernels() before its first access to step data, ahead of any
// early return (a grid whose every thread left without waiting would complete before its
// predecessor, and the kernel after it would no longer be ordered behind that one). A kernel
// launched with the attribute but without the wait would race: launch_kernel is the only launch
// path of these kernels (no <<<…>>> in their files), and the wait is the first statement of each.
//
// The release (griddepcontrol.launch_dependents: the next kernel may be scheduled once every block
// of this one has released or exited) comes right after the wait, in every kernel: the next
// kernel's blocks then take free SM slots and run up to their own wait while this kernel works,
// and they cannot touch step data before it has completed, so releasing early costs only the slots
// their waiting blocks hold; a release at the end would leave the launch latency exposed, which is
// what PDL removes. Releasing after the wait rather than before bounds the overlap to two kernels
// (the next one's blocks arrive only when this one's last blocks are past their wait).
//
// Kernels launched without the attribute (PDL off, cuBLASLt, copies between ours) are ordinary
// stream dependencies; the wait and release then do nothing. Below sm_90 they compile to nothing.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/programmatic_launch.h"

#include <cuda_runtime.h>

#include <utility>

namespace octet::backend::cuda {

__device__ __forceinline__ void await_earlier_kernels() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // "memory": no load or store of the kernel moves above the wait.
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// The current device's SM count, asked once a process (the persistent kernels' grid size).
inline int multiprocessor_count() {
  static const int sms = [] {
    int device = 0, count = 0;
    OCTET_CUDA_CHECK(cudaGetDevice(&device));
    OCTET_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    return count;
  }();
  return sms;
}

struct LaunchShape {
  dim3 grid;
  dim3 block;
  size_t shared_bytes = 0;
  unsigned cluster_blocks = 1;  // > 1: thread-block clusters of that many blocks along x (sm_90)
};

// kernel<<<shape>>>(args…) on stream, programmatic where programmatic_launches(stream); checked.
template <typename... Params, typename... Args>
void launch_kernel(void (*kernel)(Params...), const LaunchShape& shape, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = shape.grid;
  config.blockDim = shape.block;
  config.dynamicSmemBytes = shape.shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attributes[2] = {};
  unsigned count = 0;
  if (programmatic_launches(stream)) {
    attributes[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[count].val.programmaticStreamSerializationAllowed = 1;
    ++count;
  }
  if (shape.cluster_blocks > 1) {
    attributes[count].id = cudaLaunchAttributeClusterDimension;
    attributes[count].val.clusterDim.x = shape.cluster_blocks;
    attributes[count].val.clusterDim.y = 1;
    attributes[count].val.clusterDim.z = 1;
    ++count;
  }
  config.attrs = count > 0 ? attributes : nullptr;
  config.numAttrs = count;
  OCTET_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace octet::backend::cuda
