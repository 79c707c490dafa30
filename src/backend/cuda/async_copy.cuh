#pragma once
// Copies the copy engine (TMA) makes from global into shared memory while the threads compute, and the
// shared-memory barriers (mbarriers) that say when they have landed: PTX wrappers for sm_90 and later.
// Below sm_90 they compile to nothing; their callers only run there (the host checks the device).
//
// A copy counts its bytes against a barrier (complete_tx); the barrier's phase completes once its
// expected arrivals have arrived and the bytes announced with them (expect_tx) have landed. A waiter
// names the phase by parity, so a barrier must not run two phases ahead of any of its waiters.
#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace octet::backend::cuda {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbarrier_init(unsigned long long* bar, unsigned count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(count) : "memory");
#endif
}

// After mbarrier_init and before any copy names the barrier: the copy engine sees the initialised barrier.
__device__ __forceinline__ void mbarrier_init_fence() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// One arrival that also announces `bytes` to land on the barrier in this phase.
__device__ __forceinline__ void mbarrier_expect_bytes(unsigned long long* bar, unsigned bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)), "r"(bytes)
               : "memory");
#endif
}

__device__ __forceinline__ void mbarrier_arrive(unsigned long long* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar)) : "memory");
#endif
}

// Until the phase of parity `parity` has completed ("memory": no read of the copied bytes moves above
// it). Cluster scope: the barrier is one other blocks of the cluster arrive on, and their writes
// before arriving are seen after it.
template <bool ClusterScope = false>
__device__ __forceinline__ void mbarrier_wait(unsigned long long* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t done = 0;
  do {
    if constexpr (ClusterScope)
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
          : "=r"(done)
          : "r"(shared_address(bar)), "r"(parity)
          : "memory");
    else
      asm volatile(
          "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
          : "=r"(done)
          : "r"(shared_address(bar)), "r"(parity)
          : "memory");
  } while (!done);
#endif
}

// bytes (a multiple of 16) from global src to shared dst, completing on bar, with an L2 cache policy.
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, unsigned bytes, unsigned long long* bar,
                                          uint64_t policy) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;\n" ::"r"(
          shared_address(dst)),
      "l"(src), "r"(bytes), "r"(shared_address(bar)), "l"(policy)
      : "memory");
#endif
}

// The box of a 3-D tensor map at coordinates (x, y, z) (innermost first) into shared dst, completing on
// bar. The map lives in kernel parameter space (a __grid_constant__ parameter), as the copy requires.
__device__ __forceinline__ void tensor_copy_3d(uint32_t dst, const CUtensorMap* map, int x, int y, int z,
                                               unsigned long long* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(z), "r"(shared_address(bar))
      : "memory");
#endif
}

// The same for a 2-D tensor map at (x, y).
__device__ __forceinline__ void tensor_copy_2d(uint32_t dst, const CUtensorMap* map, int x, int y, unsigned long long* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(shared_address(bar))
      : "memory");
#endif
}

// The same box brought into the shared memory of every block of the cluster named in cta_mask (bit r:
// rank r), at dst's offset in each, completing on the barrier at bar's offset in each.
__device__ __forceinline__ void tensor_copy_2d_multicast(uint32_t dst, const CUtensorMap* map, int x, int y,
                                                         unsigned long long* bar, uint16_t cta_mask) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(shared_address(bar)), "h"(cta_mask)
      : "memory");
#endif
}

// Thread-block clusters (sm_90): this block's rank and the cluster's size (1 without clusters).
__device__ __forceinline__ unsigned cluster_block_rank() {
  unsigned rank = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
#endif
  return rank;
}
__device__ __forceinline__ unsigned cluster_blocks() {
  unsigned count = 1;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mov.u32 %0, %%cluster_nctarank;\n" : "=r"(count));
#endif
  return count;
}

// Every thread of every block of the cluster: the writes before it (and the barriers initialised
// before it) are seen by all the cluster's blocks after it.
__device__ __forceinline__ void cluster_sync_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
  asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}

// One arrival on the barrier at bar's offset in the cluster's block of rank `rank` (this one too).
__device__ __forceinline__ void mbarrier_arrive_in_block(unsigned long long* bar, unsigned rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t remote = 0;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(shared_address(bar)), "r"(rank));
  // The default semantics (release at the CTA's scope), not .release.cluster: that one costs a GPU-wide
  // fence (MEMBAR.ALL.GPU) an arrival, and an arrival here only says the stage's reads are done.
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(remote) : "memory");
#endif
}

__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t policy = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
#endif
  return policy;
}

}  // namespace octet::backend::cuda
